package election

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/klog/v2"
	clocktesting "k8s.io/utils/clock/testing"
)

// renewEvery feeds the pacer one window's renewals of cfg's group, each with the
// given latency and error, and advances the clock past the window.
func renewEvery(p *pacer, clk *clocktesting.FakeClock, cfg *Config, n int, latency time.Duration, err error) {
	for range n {
		clk.Step(paceWindow / time.Duration(n))
		p.observe(cfg, latency, false, err)
	}
}

func TestPacerSpacesRenewalsOutWhileTheServerIsSlowAndComesBack(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Unix(1_000_000, 0))
	p := newPacer(clk, klog.Background())
	cfg := &Config{LeaseDuration: 6 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: time.Second}
	slowest := cfg.Timings().SlowestRenewal() // 3/4 of renewDeadline

	renewEvery(p, clk, cfg, 50, 20*time.Millisecond, nil)
	if got := p.interval(cfg); got != cfg.RetryPeriod {
		t.Fatalf("fast renewals: interval %s, want retryPeriod %s", got, cfg.RetryPeriod)
	}

	// Slow: past a tenth of renewDeadline. The interval grows every window, and
	// never past SlowestRenewal.
	prev := p.interval(cfg)
	for i := range 6 {
		renewEvery(p, clk, cfg, 50, 400*time.Millisecond, nil)
		got := p.interval(cfg)
		if got > slowest {
			t.Fatalf("window %d: interval %s beyond the slowest renewal %s", i, got, slowest)
		}
		if got <= prev && prev != slowest {
			t.Fatalf("window %d: interval %s did not grow from %s while renewals were slow", i, got, prev)
		}
		prev = got
	}
	if prev != slowest {
		t.Fatalf("after 6 slow windows: interval %s, want the slowest renewal %s", prev, slowest)
	}

	// Busy (past a third of that) but not slow: the interval holds where it is, and
	// comes back only one step in busyWindows (a server that is merely far away
	// answers every renewal busy).
	step := (slowest - cfg.RetryPeriod) / fullStretch
	for i := range busyWindows {
		renewEvery(p, clk, cfg, 50, 150*time.Millisecond, nil)
		want := slowest
		if i == busyWindows-1 {
			want = slowest - step
		}
		if got := p.interval(cfg); got != want {
			t.Fatalf("busy window %d: interval %s, want %s", i, got, want)
		}
	}
	for range busyWindows * (fullStretch - 1) {
		renewEvery(p, clk, cfg, 50, 150*time.Millisecond, nil)
	}
	if got := p.interval(cfg); got != cfg.RetryPeriod {
		t.Fatalf("after %d busy windows: interval %s, want retryPeriod %s", busyWindows*fullStretch, got, cfg.RetryPeriod)
	}
	renewEvery(p, clk, cfg, 50, 400*time.Millisecond, nil)
	for range 4 {
		renewEvery(p, clk, cfg, 50, 400*time.Millisecond, nil)
	}
	if got := p.interval(cfg); got != slowest {
		t.Fatalf("slow again: interval %s, want %s", got, slowest)
	}

	// Conflicts and deleted Leases say nothing about load.
	conflict := apierrors.NewConflict(schema.GroupResource{Resource: "leases"}, "x", errors.New("changed"))
	for i := range 50 {
		clk.Step(paceWindow / 50)
		if i%2 == 0 {
			p.observe(cfg, 900*time.Millisecond, false, conflict)
		} else {
			p.observe(cfg, 20*time.Millisecond, false, nil)
		}
	}
	if got := p.interval(cfg); got >= slowest {
		t.Fatalf("a window of fast renewals and slow conflicts: interval %s, want it to shrink", got)
	}

	// Fast again, but for one slow renewal in a hundred (a GC pause): back to
	// retryPeriod within twenty windows, one step at a time.
	for i := range 20 {
		before := p.interval(cfg)
		for i := range 100 {
			clk.Step(paceWindow / 100)
			latency := 20 * time.Millisecond
			if i == 50 {
				latency = time.Second
			}
			p.observe(cfg, latency, false, nil)
		}
		if got, step := p.interval(cfg), (slowest-cfg.RetryPeriod)/fullStretch; before > cfg.RetryPeriod && before-got > step {
			t.Fatalf("fast window %d: interval went from %s to %s, more than one step (%s)", i, before, got, step)
		}
	}
	if got := p.interval(cfg); got != cfg.RetryPeriod {
		t.Fatalf("after 20 fast windows: interval %s, want retryPeriod %s", got, cfg.RetryPeriod)
	}
}

func TestPacerTreatsThrottlingAndTimeoutsAsSlow(t *testing.T) {
	cfg := &Config{LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}
	for name, err := range map[string]error{
		"429":      apierrors.NewTooManyRequests("slow down", 1),
		"timeout":  context.DeadlineExceeded,
		"refused":  errors.New("connection refused"),
		"server":   apierrors.NewServerTimeout(schema.GroupResource{Resource: "leases"}, "update", 1),
		"too slow": nil, // latency below
	} {
		clk := clocktesting.NewFakeClock(time.Unix(1_000_000, 0))
		p := newPacer(clk, klog.Background())
		slow := 10 * time.Millisecond
		if err == nil {
			slow = 1500 * time.Millisecond // past a tenth of renewDeadline
		}
		// One slow renewal in ten is enough.
		for i := range 10 {
			clk.Step(paceWindow / 10)
			if i < 9 {
				p.observe(cfg, 10*time.Millisecond, false, nil)
			} else {
				p.observe(cfg, slow, false, err)
			}
		}
		if got := p.interval(cfg); got <= cfg.RetryPeriod {
			t.Errorf("%s: interval %s, want it spaced out beyond retryPeriod", name, got)
		}
	}
}

func TestWithoutAPacerElectorsRenewEveryRetryPeriod(t *testing.T) {
	var p *pacer
	cfg := &Config{LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}
	p.observe(cfg, time.Minute, false, nil)
	if got := p.interval(cfg); got != cfg.RetryPeriod {
		t.Fatalf("interval %s, want retryPeriod", got)
	}
}

// renewTimes collects the renewTime of every version of a Lease from a watch: when
// the leader sent each renewal, as the Lease itself records it.
type renewTimes struct {
	mu    sync.Mutex
	times []time.Time
}

func watchRenewals(t *testing.T, key types.NamespacedName) *renewTimes {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w, err := admin.CoordinationV1().Leases(key.Namespace).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + key.Name})
	if err != nil {
		t.Fatal(err)
	}
	rt := &renewTimes{}
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			if l, ok := ev.Object.(*coordinationv1.Lease); ok && l.Spec.RenewTime != nil {
				rt.mu.Lock()
				if n := len(rt.times); n == 0 || !rt.times[n-1].Equal(l.Spec.RenewTime.Time) {
					rt.times = append(rt.times, l.Spec.RenewTime.Time)
				}
				rt.mu.Unlock()
			}
		}
	}()
	return rt
}

// medianInterval is the median interval between the renewals sent in [from, to).
func (rt *renewTimes) medianInterval(from, to time.Time) (time.Duration, int) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var gaps []time.Duration
	for i := 1; i < len(rt.times); i++ {
		if !rt.times[i-1].Before(from) && rt.times[i].Before(to) {
			gaps = append(gaps, rt.times[i].Sub(rt.times[i-1]))
		}
	}
	if len(gaps) == 0 {
		return 0, 0
	}
	slices.Sort(gaps)
	return gaps[len(gaps)/2], len(gaps)
}

// While every renewal takes longer than a tenth of renewDeadline, the leader renews
// every 3/4 of renewDeadline instead of every retryPeriod, and keeps leading; once they
// are fast again it renews every retryPeriod.
func TestALeaderRenewsLessOftenWhileTheServerIsSlowAndKeepsLeading(t *testing.T) {
	ns := newNamespace(t)
	rec := newRecorder(t)
	key := types.NamespacedName{Namespace: ns, Name: "paced"}
	timings := Config{LeaseDuration: 6 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: time.Second}
	renewals := watchRenewals(t, key)
	a := startProcess(t, "a", rec, ns)
	e := a.join(t, key, timings)
	eventually(t, 10*time.Second, "a leads", e.IsLeader)

	// A phase: within settle, the renewals come at an interval in [lo, hi], and they
	// keep to it over the next window (real time has to pass: it is what is measured).
	// The bounds leave slack for a loaded machine, where timers fire late.
	phase := func(name string, settle time.Duration, lo, hi time.Duration) {
		t.Helper()
		eventually(t, settle, name+": renewals every "+lo.String()+" to "+hi.String(), func() bool {
			got, n := renewals.medianInterval(time.Now().Add(-3*hi), time.Now())
			return n >= 2 && got >= lo && got <= hi
		})
		from := time.Now()
		time.Sleep(3 * hi)
		got, n := renewals.medianInterval(from, time.Now())
		t.Logf("%s: median interval between renewals %s (%d intervals)", name, got, n)
		if n < 2 || got < lo || got > hi {
			t.Errorf("%s: median interval between renewals %s over %d intervals, want %s to %s", name, got, n, lo, hi)
		}
	}
	phase("fast server", 10*time.Second, 900*time.Millisecond, 1300*time.Millisecond)
	// Past 300ms, a tenth of renewDeadline: full stretch after 4 one-second windows.
	a.requests.putDelay.Store(int64(350 * time.Millisecond))
	phase("slow server", 15*time.Second, 2100*time.Millisecond, 2500*time.Millisecond)
	// A term begun now renews first after half to all of the spaced-out interval,
	// not of retryPeriod: takeovers into a strained server add no early renewals.
	// Both times are the elector's own, from the record: lateness cannot pass.
	key2 := types.NamespacedName{Namespace: ns, Name: "paced-new-term"}
	renewals2 := watchRenewals(t, key2)
	a.join(t, key2, timings)
	eventually(t, 10*time.Second, "the new term's first renewal", func() bool {
		renewals2.mu.Lock()
		defer renewals2.mu.Unlock()
		return len(renewals2.times) >= 2
	})
	renewals2.mu.Lock()
	first := renewals2.times[1].Sub(renewals2.times[0])
	renewals2.mu.Unlock()
	// Still fully spaced out (the server is still slow), so the interval now is the
	// one the term began with; half of it is past the longest retryPeriod jitter.
	// (Less one spreadBucket: the renewalBook may move it one bucket earlier, off
	// the other group's renewal.)
	if paced := a.reg.opts.pace.interval(&timings); first < paced/2-spreadBucket {
		t.Errorf("a term begun while renewals are spaced out to %s renewed first after %s, want at least half of that", paced, first)
	}
	a.reg.Stop(key2.String()) // the failure injected next is for the first group's renewal
	// A renewal fails while they are spaced out: a retry period later would be
	// past the deadline, so the retry comes halfway to it.
	a.requests.failPuts.Store(1)
	eventually(t, 5*time.Second, "the failed renewal", func() bool { return a.requests.failPuts.Load() < 0 })
	phase("slow server, after a failed renewal", 10*time.Second, 2100*time.Millisecond, 2500*time.Millisecond)
	a.requests.putDelay.Store(0)
	// Back to retryPeriod after 20 windows without a slow renewal.
	phase("fast again", 35*time.Second, 900*time.Millisecond, 1300*time.Millisecond)

	if terms := rec.terms(key.String()); len(terms) != 1 || !e.IsLeader() {
		t.Fatalf("leadership was lost while renewals were slow: terms %v", terms)
	}
}

// A renewal that waited long for a write slot is slow, though the server then
// answered it quickly: the process has more writes than the server takes. A short
// wait is only a busy process in front of a healthy server.
func TestPacerTreatsARenewalThatWaitedLongForASlotAsSlow(t *testing.T) {
	cfg := &Config{LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}
	for _, tc := range []struct {
		latency time.Duration
		slow    bool
	}{{10 * time.Millisecond, false}, {300 * time.Millisecond, true}} { // a fortieth of renewDeadline is 250ms
		clk := clocktesting.NewFakeClock(time.Unix(1_000_000, 0))
		p := newPacer(clk, klog.Background())
		for range 10 {
			clk.Step(paceWindow / 10)
			p.observe(cfg, tc.latency, true, nil)
		}
		if got := p.interval(cfg); (got > cfg.RetryPeriod) != tc.slow {
			t.Errorf("renewals that waited for a slot, %s in all: interval %s; want spaced out: %v", tc.latency, got, tc.slow)
		}
	}
}

// Status writes wait while renewals are spaced out; a process that stops renewing
// (it leads nothing any more) must not keep them waiting on what it saw last.
func TestAStretchNoRenewalConfirmsIsForgotten(t *testing.T) {
	cfg := &Config{LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}
	clk := clocktesting.NewFakeClock(time.Unix(1_000_000, 0))
	p := newPacer(clk, klog.Background())
	renewEvery(p, clk, cfg, 10, 2*time.Second, nil)
	if !p.strained() {
		t.Fatal("slow renewals: want strained")
	}
	clk.Step(strainMemory - paceWindow)
	if !p.strained() {
		t.Fatal("strained forgotten too soon")
	}
	clk.Step(paceWindow)
	if p.strained() {
		t.Fatalf("no renewal for %s: still strained", strainMemory)
	}
}
