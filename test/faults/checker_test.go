package faults

import (
	"strings"
	"testing"
	"time"
)

// The checker is the suite's judge: each test here hands it records with one
// planted violation (or a near miss that is none) and asserts what it says.

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// clean is a run with no violation: m1 leads fast-a at epoch 1, expires (killed),
// m2 takes over at epoch 2 after the leaseDuration; status and Lease agree; one
// fault, recovered from within the bound.
func clean() Records {
	g := Group{Name: "fast-a", Source: Manager, Timings: []Timings{fast}}
	g.Recovery = recoveryBound(g)
	return Records{
		Groups: []Group{g},
		Intervals: []Interval{
			{Group: "fast-a", Party: "m1", Epoch: 1, Start: at(0), End: at(1000), Open: true},
			{Group: "fast-a", Party: "m2", Epoch: 2, Start: at(5000), End: at(10500)}, // stopped after the end
		},
		Leases: []LeaseVersion{
			{Group: "fast-a", At: at(1), Holder: "m1", Epoch: 1, RenewTime: at(0), StartReason: "Elected", EndReason: "Unknown"},
			{Group: "fast-a", At: at(501), Holder: "m1", Epoch: 1, RenewTime: at(500), StartReason: "Elected", EndReason: "Unknown"},
			{Group: "fast-a", At: at(5001), Holder: "m2", Epoch: 2, RenewTime: at(5000), StartReason: "AfterExpiry", EndReason: "Expired"},
		},
		Statuses: []StatusVersion{
			{Group: "fast-a", At: at(10), Holder: "m1", Transitions: 1, History: []Term{{"m1", 1, "Elected", ""}}},
			{Group: "fast-a", At: at(5010), Holder: "m2", Transitions: 2, History: []Term{{"m2", 2, "AfterExpiry", ""}, {"m1", 1, "Elected", "Expired"}}},
		},
		Labels: []LabelSample{{Group: "web", At: at(0), Pods: []string{"web-0"}}},
		Faults: []Fault{{Kind: "manager-kill", Target: "m1", Start: at(1000), End: at(2000)}},
		End:    at(10000),
		Slack:  time.Second,
	}
}

func TestCheckerPassesACleanRun(t *testing.T) {
	res := Check(clean())
	for _, v := range res.Violations {
		t.Errorf("unexpected: %s", v)
	}
	if len(res.Recoveries) != 1 || res.Recoveries[0].Took != 3*time.Second {
		t.Errorf("recoveries %+v, want one of 3s (fault ended at 2s, m2 led at 5s)", res.Recoveries)
	}
	rows := Table(clean(), res)
	if len(rows) != 1 || rows[0].Kind != "manager-kill" || rows[0].Count != 1 || rows[0].Slowest != 3*time.Second {
		t.Errorf("table %+v", rows)
	}
}

// Two labelled pods, only one of which takes new requests (a terminating leader keeps
// the label until its successor has it), is no violation.
func TestCheckerAllowsADrainingLeaderItsLabel(t *testing.T) {
	r := clean()
	r.Labels = append(r.Labels, LabelSample{Group: "web", At: at(10), Pods: []string{"web-0", "web-1"}, Serving: []string{"web-1"}})
	for _, v := range Check(r).Violations {
		t.Errorf("unexpected: %s", v)
	}
}

func TestCheckerFindsPlantedViolations(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plant func(*Records)
		want  string // in one of the violations
	}{
		{"two leaders overlap", func(r *Records) {
			r.Intervals[1].Start = at(900)
		}, "overlap"},
		{"a child outlives its term", func(r *Records) {
			r.Runs = []Run{{Group: "fast-a", Holder: "m1", Epoch: 1, Pid: 7, Start: at(10), End: at(5100)}}
		}, "child of m1 at epoch 1"},
		{"an epoch given to two terms", func(r *Records) {
			r.Intervals[1].Epoch = 1
		}, "epoch 1 given to m1 and to m2"},
		{"the Lease's epoch goes back", func(r *Records) {
			r.Leases = append(r.Leases, LeaseVersion{Group: "fast-a", At: at(9500), Holder: "m3", Epoch: 1, RenewTime: at(9500)})
		}, "went back to epoch 1"},
		{"a resumed process renews its old term", func(r *Records) {
			r.Intervals[0].End, r.Intervals[0].Open = at(8000), false
			r.Intervals[1].Start = at(8100) // so that only the renewal is wrong
			r.Freezes = []Freeze{{Party: "m1", From: at(600), To: at(7600)}}
			m2 := r.Leases[2]
			m2.At, m2.RenewTime = at(8100), at(8100)
			r.Leases = append(r.Leases[:2], LeaseVersion{Group: "fast-a", At: at(7700), Holder: "m1", Epoch: 1, RenewTime: at(7650), StartReason: "Elected", EndReason: "Unknown"}, m2)
		}, "m1 renewed epoch 1"},
		{"status goes back", func(r *Records) {
			r.Statuses = append(r.Statuses, StatusVersion{Group: "fast-a", At: at(9000), Holder: "m1", Transitions: 1,
				History: []Term{{"m1", 1, "Elected", ""}}})
		}, "status went back from epoch 2 to 1"},
		{"history invents a term", func(r *Records) {
			r.Statuses[1].History = append([]Term{{"m9", 3, "", ""}}, r.Statuses[1].History...)
		}, "m9 at epoch 3"},
		{"history invents a reason", func(r *Records) {
			r.Statuses[1].History[1].EndReason = "Released"
		}, "ended Released"},
		{"the label on two pods that take requests", func(r *Records) {
			r.Labels = append(r.Labels, LabelSample{Group: "web", At: at(10), Pods: []string{"web-0", "web-1"}, Serving: []string{"web-0", "web-1"}})
		}, "[web-0 web-1]"},
		{"a slow recovery", func(r *Records) {
			r.Intervals[1].Start, r.Intervals[1].End, r.End = at(12000), at(20000), at(20000)
		}, "had no leader"},
		{"records that show nothing", func(r *Records) {
			r.Intervals = nil
		}, "cannot see it"},
		{"a panic", func(r *Records) {
			r.Problems = []Violation{{Check: "panic", At: at(3), Detail: "m1: panic: boom"}}
		}, "boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := clean()
			tc.plant(&r)
			res := Check(r)
			found := false
			for _, v := range res.Violations {
				found = found || strings.Contains(v.Detail, tc.want)
			}
			if !found {
				t.Fatalf("no violation says %q: %v", tc.want, res.Violations)
			}
			rows := Table(r, res)
			total := 0
			for _, row := range rows {
				total += row.Violations
			}
			if total == 0 {
				t.Errorf("the table shows no violation: %+v", rows)
			}
		})
	}
}

// A frozen leader is not a violation by itself: its interval ends where the
// freeze began (its deadline passed while it was stopped), and its child, which a
// stopped elector cannot stop, must be gone soon after it resumes.
func TestCheckerCutsFrozenParties(t *testing.T) {
	r := clean()
	r.Groups[0].Source = External
	r.Intervals[0].End, r.Intervals[0].Open = at(9500), false // logged after SIGCONT
	r.Intervals[1].End = at(12000)
	r.Freezes = []Freeze{{Party: "m1", From: at(600), To: at(9000)}}
	r.Runs = []Run{
		{Group: "fast-a", Holder: "m1", Epoch: 1, Pid: 7, Start: at(10), End: at(9200)},
		{Group: "fast-a", Holder: "m2", Epoch: 2, Pid: 8, Start: at(5010), End: at(11000)},
	}
	r.End = at(12000)
	if res := Check(r); len(res.Violations) != 0 {
		t.Errorf("unexpected: %v", res.Violations)
	}
	r.Runs[0].End = at(9000 + 2*int(fast.LeaseDuration/time.Millisecond))
	res := Check(r)
	if len(res.Violations) != 1 || res.Violations[0].Check != "frozen elector's child" {
		t.Errorf("want the frozen elector's child to outlive its bound, got %v", res.Violations)
	}
}

func TestParseIntervals(t *testing.T) {
	log := `{"level":"info","ts":"2026-12-01T12:00:00.5Z","msg":"Started leading","lease":"ns/fast-a","epoch":3}
{"level":"info","ts":"2026-12-01T12:00:00.6Z","msg":"Leading","lease":"ns/fast-a","epoch":3}
{"level":"info","ts":"2026-12-01T12:00:00.7Z","msg":"Started leading","lease":"ns/election-manager","epoch":1}
{"level":"info","ts":"2026-12-01T12:00:01Z","msg":"Stopped leading","lease":"ns/fast-a","reason":"x","epoch":3}
{"level":"info","ts":"2026-12-01T12:00:01.1Z","msg":"Stopped leading","lease":"ns/fast-a"}
{"level":"info","ts":"2026-12-01T12:00:02Z","msg":"Started leading","lease":"ns/fast-a","epoch":5}
`
	got := ParseIntervals("m1", []byte(log), map[string]string{"ns/fast-a": "fast-a"}, at(3000))
	want := []Interval{
		{Group: "fast-a", Party: "m1", Epoch: 3, Start: at(500), End: at(1000)},
		{Group: "fast-a", Party: "m1", Epoch: 5, Start: at(2000), End: at(3000), Open: true},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("interval %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestPlanIsReproducible(t *testing.T) {
	a, b := Plan(42, 50), Plan(42, 50)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("step %d differs: %+v, %+v", i, a[i], b[i])
		}
	}
	kinds := map[string]bool{}
	for _, s := range Plan(1, 2000) {
		kinds[s.Kind] = true
	}
	if len(kinds) != len(Kinds) {
		t.Errorf("2000 steps drew %d of %d kinds", len(kinds), len(Kinds))
	}
}
