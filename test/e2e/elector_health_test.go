package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A sick leader steps down: its child's health check fails (here a command that
// tests for a file the test creates), so it stops the child, releases the Lease for
// the other candidate, and does not campaign again within its back-off.

func TestElectorSickLeaderStepsDown(t *testing.T) {
	const (
		period   = 200 * time.Millisecond
		failures = 3
		backoff  = 2 * leaseDuration
	)
	c := newCluster(t)
	kids := newChildren(t)
	dir := t.TempDir()
	sickFile := func(id string) string { return filepath.Join(dir, "sick-"+id) }
	electors := map[string]*elector{}
	for _, id := range []string{"e-1", "e-2"} {
		args := append(lockArgs(c.namespace, "work"),
			"--health-command", "test ! -e "+sickFile(id), "--health-period="+period.String(),
			"--health-failures=3", "--step-down-backoff="+backoff.String())
		electors[id] = c.startElector(kids, electorArgs{id: id, http: true, election: args, child: []string{}})
	}
	first := kids.waitRun(10*time.Second, "a child", func(run) bool { return true })
	other := "e-1"
	if first.holder == "e-1" {
		other = "e-2"
	}
	electors[other].WaitForOutput(t, `"holder":"`+first.holder+`"`, 10*time.Second)

	// The leader's child turns unhealthy.
	sick := monoNow()
	if err := os.WriteFile(sickFile(first.holder), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Detection takes failures periods (and a probe's run), the child obeys its
	// SIGTERM at once, and the release lets the other take over within a retry
	// period: no leaseDuration.
	bound := (failures+1)*period + testBudget.Grace() + retryPeriod + slack
	next := kids.waitRun(bound+10*time.Second, "the other's child", func(r run) bool { return r.holder == other })
	died := kids.waitDeath(first.pid, time.Second)
	took := time.Duration(next.start - sick)
	t.Logf("the other's child started %s after the leader's child turned unhealthy (%s after it died)",
		took.Round(time.Millisecond), time.Duration(next.start-died).Round(time.Millisecond))
	if took > bound {
		t.Errorf("the other's child started %s after the leader's turned unhealthy, want within %s", took, bound)
	}
	if next.epoch <= first.epoch {
		t.Errorf("epoch %d after %d: it must grow", next.epoch, first.epoch)
	}

	// /leader and the log say why.
	var v struct {
		Leading  bool
		StepDown *struct {
			Reason    string
			At, Until time.Time
		}
	}
	resp, err := http.Get(electors[first.holder].http + "/leader")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&v)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if v.Leading || v.StepDown == nil || !strings.Contains(v.StepDown.Reason, "health") ||
		v.StepDown.Until.Sub(v.StepDown.At) != backoff {
		t.Errorf("/leader on the sick elector: %+v, want a stepDown saying why, for %s", v, backoff)
	}
	// In this order: the child goes while the term is still held, then the term
	// ends, then the release. Judged by the times the lines carry: two goroutines'
	// lines can reach the log in the other order.
	out := electors[first.holder].Output()
	var prev time.Time
	for _, want := range []string{`"msg":"Child unhealthy: stepping down"`, `"msg":"Child exited"`,
		`"msg":"Stopped leading","lease":"` + c.namespace + `/work","identity":"` + first.holder + `","reason":"Stepping down"`,
		`"msg":"Released lease"`, `"msg":"Not campaigning until the step-down's back-off ends"`} {
		at, ok := loggedAt(out, want)
		if !ok || at.Before(prev) {
			t.Errorf("the sick elector's log does not say %s after what came before:\n%s", want, out)
			break
		}
		prev = at
	}

	// The other leaves at once, releasing the Lease; the first, healthy again,
	// must not take it before its back-off, counted from its release (after its
	// child died), has passed.
	if err := os.Remove(sickFile(first.holder)); err != nil {
		t.Fatal(err)
	}
	if err := electors[other].Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	electors[other].Wait(t, 10*time.Second)
	left := monoNow()
	again := kids.waitRun(backoff+10*time.Second, "the first's child again", func(r run) bool {
		return r.holder == first.holder && r.start > next.start
	})
	after := time.Duration(again.start - died)
	t.Logf("the Lease was free from %s after the step-down; the first took it back %s after its child died (back-off %s)",
		time.Duration(left-died).Round(time.Millisecond), after.Round(time.Millisecond), backoff)
	if after < backoff {
		t.Errorf("the first took the Lease back %s after stepping down, within its back-off %s", after, backoff)
	}
	if after > backoff+retryPeriod+slack {
		t.Errorf("the first took the Lease back %s after stepping down, want soon after its back-off %s", after, backoff)
	}
}

// loggedAt is the time of the first line of a JSON log that contains want.
func loggedAt(out, want string) (time.Time, bool) {
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, want) {
			continue
		}
		var l struct {
			TS time.Time `json:"ts"`
		}
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			return time.Time{}, false
		}
		return l.TS, true
	}
	return time.Time{}, false
}
