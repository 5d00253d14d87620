package controller

import (
	"slices"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/leaserecord"
)

// A presence Lease expires its duration after it was last seen changing, on the
// observer's clock: however late a reconcile first asks, and however many times
// it asks, the instance is gone from then on.
func TestPresenceExpiresFromWhenLastSeenChanging(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(t0)
	tracker := leaserecord.NewTracker(clk)
	key := types.NamespacedName{Namespace: "ns", Name: PresenceLeaseName("lock", "m")}
	var stored *coordinationv1.Lease
	p := newPresence(types.NamespacedName{Namespace: "ns", Name: "lock"}, tracker,
		func(k types.NamespacedName) *coordinationv1.Lease {
			if k == key {
				return stored
			}
			return nil
		}, time.Minute)
	g := &v1alpha1.LeaderGroup{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "g"}}
	// seen is what the informer's handler does with every version: the tracker
	// first, then the controller's handler.
	seen := func(l *coordinationv1.Lease) {
		stored = l
		tracker.Since(key, l)
		p.observe(key, l)
	}
	w := leaserecord.Writer{Identity: "m", LeaseDuration: 6 * time.Second, Labels: map[string]string{LabelPresence: "lock"}}
	l := leaserecord.Create(key, w, clk.Now(), 1)
	l.UID = "u"
	seen(l)
	clk.SetTime(t0.Add(2 * time.Second))
	l = leaserecord.Renew(l, w, clk.Now())
	seen(l) // the last renewal: it expires at +8s

	live := func(at time.Duration) bool {
		clk.SetTime(t0.Add(at))
		c := p.candidates(g, clk.Now())
		found := p.find(g, "m", clk.Now()) != nil
		if found != isCandidate(c, "m") {
			t.Fatalf("at +%s: find says %t, candidates %v", at, found, c)
		}
		return found
	}
	// No reconcile asked before +9s: the first one to ask must not start the clock.
	if live(9 * time.Second) {
		t.Errorf("live at +9s, 7s after its last renewal seen at +2s (duration 6s)")
	}
	if !live(7 * time.Second) {
		t.Errorf("not live at +7s, within 6s of its last renewal seen at +2s")
	}
	if live(30 * time.Second) {
		t.Errorf("live again at +30s: asking must not move the clock")
	}
}

// stale lists the presence Leases unchanged for the bound on this clock, held or
// released (a crashed instance's, or one whose delete failed), and no others.
func TestStalePresenceLeases(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(t0)
	tracker := leaserecord.NewTracker(clk)
	p := newPresence(types.NamespacedName{Namespace: "ns", Name: "lock"}, tracker,
		func(types.NamespacedName) *coordinationv1.Lease { return nil }, time.Minute)
	w := func(id string) leaserecord.Writer {
		return leaserecord.Writer{Identity: id, LeaseDuration: 6 * time.Second, Labels: map[string]string{LabelPresence: "lock"}}
	}
	seen := func(id string, l *coordinationv1.Lease) {
		key := types.NamespacedName{Namespace: "ns", Name: PresenceLeaseName("lock", id)}
		tracker.Since(key, l)
		p.observe(key, l)
	}
	crashed := leaserecord.Create(types.NamespacedName{Namespace: "ns", Name: PresenceLeaseName("lock", "crashed")}, w("crashed"), t0, 1)
	released := leaserecord.Release(leaserecord.Create(types.NamespacedName{Namespace: "ns", Name: PresenceLeaseName("lock", "released")}, w("released"), t0, 1), "released", t0)
	live := leaserecord.Create(types.NamespacedName{Namespace: "ns", Name: PresenceLeaseName("lock", "live")}, w("live"), t0, 1)
	seen("crashed", crashed)
	seen("released", released)
	seen("live", live)
	clk.SetTime(t0.Add(20 * time.Second))
	seen("live", leaserecord.Renew(live, w("live"), clk.Now()))

	names := func(at time.Duration) []string {
		var out []string
		for _, l := range p.stale(t0.Add(at), 24*time.Second) {
			out = append(out, l.Name)
		}
		slices.Sort(out)
		return out
	}
	if got := names(23 * time.Second); len(got) != 0 {
		t.Errorf("stale at +23s: %v, want none", got)
	}
	if got, want := names(24*time.Second), []string{"lock-crashed", "lock-released"}; !slices.Equal(got, want) {
		t.Errorf("stale at +24s: %v, want %v", got, want)
	}
	p.observe(types.NamespacedName{Namespace: "ns", Name: "lock-crashed"}, nil)
	if got, want := names(44*time.Second), []string{"lock-live", "lock-released"}; !slices.Equal(got, want) {
		t.Errorf("stale at +44s after lock-crashed was deleted: %v, want %v", got, want)
	}
}
