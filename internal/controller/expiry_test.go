package controller

import (
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/election-manager/election-manager/internal/leaserecord"
)

// A Lease renewed in time wakes nobody, however many leaseDurations pass; once its
// renewals stop, the groups waiting on it are woken once, at its expiry on this
// observer's clock.
func TestExpiryWatchWakesOnlyWhenTheLeaseLapses(t *testing.T) {
	clk := newTimers()
	tracker := leaserecord.NewTracker(clk.passive)
	key := types.NamespacedName{Namespace: "ns", Name: "payments"}
	var stored *coordinationv1.Lease
	var mu sync.Mutex
	var woken []types.NamespacedName
	w := newExpiryWatch(tracker, func(types.NamespacedName) *coordinationv1.Lease { return stored }, clk,
		func(groups []types.NamespacedName, all bool) {
			mu.Lock()
			defer mu.Unlock()
			woken = append(woken, groups...)
		})
	wokenSoFar := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(woken)
	}
	seen := func(l *coordinationv1.Lease) { stored = l; tracker.Since(key, l) }

	writer := leaserecord.Writer{Identity: "a", LeaseDuration: 6 * time.Second}
	l := leaserecord.Create(key, writer, clk.passive.Now(), 1)
	l.UID = "u"
	seen(l)
	group := types.NamespacedName{Namespace: "ns", Name: "payments"}
	w.group(key, 6*time.Second, group)
	w.group(key, 6*time.Second, group) // a second reconcile asks again: still one timer

	// Renewed every second for a minute: the timer fires at each expiry it computed,
	// finds a later one, and sets itself again.
	for range 60 {
		clk.step(time.Second)
		l = leaserecord.Renew(l, writer, clk.passive.Now())
		seen(l)
	}
	if n := wokenSoFar(); n != 0 {
		t.Fatalf("woken %d times while the Lease was renewed", n)
	}
	if w.size() != 1 {
		t.Fatalf("%d Leases watched, want 1", w.size())
	}

	// Renewals stop: woken at the expiry (6s after the last renewal was seen), once.
	clk.step(5 * time.Second)
	if n := wokenSoFar(); n != 0 {
		t.Fatalf("woken before the expiry")
	}
	clk.step(time.Second)
	if n := wokenSoFar(); n != 1 {
		t.Fatalf("woken %d times at the expiry, want once", n)
	}
	clk.step(time.Minute)
	if n := wokenSoFar(); n != 1 || w.size() != 0 {
		t.Fatalf("woken %d times, %d Leases still watched after the expiry; want 1 and 0", n, w.size())
	}

	// The holder comes back and renews (same identity, same epoch: no new term):
	// the group that showed it expired is woken again, once.
	l = leaserecord.Renew(l, writer, clk.passive.Now())
	seen(l)
	w.seen(key, l)
	w.seen(key, l)
	if n := wokenSoFar(); n != 2 {
		t.Fatalf("woken %d times in all after the renewal that ended the lapse, want 2", n)
	}
}

// A Lease without a holder does not expire: nothing to wait for.
func TestExpiryWatchIgnoresALeaseWithoutHolder(t *testing.T) {
	clk := newTimers()
	tracker := leaserecord.NewTracker(clk.passive)
	key := types.NamespacedName{Namespace: "ns", Name: "payments"}
	released := leaserecord.Release(leaserecord.Create(key, leaserecord.Writer{Identity: "a", LeaseDuration: 6 * time.Second}, clk.passive.Now(), 1), "a", clk.passive.Now())
	w := newExpiryWatch(tracker, func(types.NamespacedName) *coordinationv1.Lease { return released }, clk,
		func([]types.NamespacedName, bool) { t.Error("woken for a Lease nobody holds") })
	w.group(key, 6*time.Second, key)
	clk.step(time.Minute)
	if w.size() != 0 {
		t.Errorf("%d Leases watched, want 0", w.size())
	}
}

// timers runs AfterFunc callbacks in order as step moves a fake clock, on the
// stepping goroutine (k8s.io/utils' FakeClock runs them under its lock, where the
// watch cannot read the time).
type timers struct {
	clock.Clock // unused: the watch only sets timers
	passive     *clocktesting.FakePassiveClock
	pending     []pendingFunc
}

type pendingFunc struct {
	at time.Time
	f  func()
}

func newTimers() *timers { return &timers{passive: clocktesting.NewFakePassiveClock(t0)} }

func (c *timers) AfterFunc(d time.Duration, f func()) clock.Timer {
	c.pending = append(c.pending, pendingFunc{at: c.passive.Now().Add(d), f: f})
	return nil
}

func (c *timers) step(d time.Duration) {
	target := c.passive.Now().Add(d)
	for {
		next := -1
		for i, p := range c.pending {
			if !p.at.After(target) && (next < 0 || p.at.Before(c.pending[next].at)) {
				next = i
			}
		}
		if next < 0 {
			break
		}
		p := c.pending[next]
		c.pending = append(c.pending[:next], c.pending[next+1:]...)
		c.passive.SetTime(p.at)
		p.f()
	}
	c.passive.SetTime(target)
}

// A renewal that shortens leaseDuration moves the expiry earlier: the groups are
// woken at the new expiry, not at the one computed before it.
func TestExpiryWatchFollowsAShorterLeaseDuration(t *testing.T) {
	clk := newTimers()
	tracker := leaserecord.NewTracker(clk.passive)
	key := types.NamespacedName{Namespace: "ns", Name: "payments"}
	var stored *coordinationv1.Lease
	var mu sync.Mutex
	woken := 0
	w := newExpiryWatch(tracker, func(types.NamespacedName) *coordinationv1.Lease { return stored }, clk,
		func([]types.NamespacedName, bool) { mu.Lock(); woken++; mu.Unlock() })
	seen := func(l *coordinationv1.Lease) { stored = l; tracker.Since(key, l); w.seen(key, l) }
	wokenSoFar := func() int { mu.Lock(); defer mu.Unlock(); return woken }

	long := leaserecord.Writer{Identity: "a", LeaseDuration: 60 * time.Second}
	l := leaserecord.Create(key, long, clk.passive.Now(), 1)
	l.UID = "u"
	seen(l)
	w.group(key, 60*time.Second, types.NamespacedName{Namespace: "ns", Name: "payments"})

	clk.step(time.Second)
	short := long
	short.LeaseDuration = 6 * time.Second
	seen(leaserecord.Renew(l, short, clk.passive.Now())) // the last renewal: expires 6s from now
	clk.step(5 * time.Second)
	if n := wokenSoFar(); n != 0 {
		t.Fatalf("woken before the shorter expiry")
	}
	clk.step(time.Second)
	if n := wokenSoFar(); n != 1 {
		t.Fatalf("woken %d times at the shorter expiry (6s after the renewal), want once", n)
	}
}
