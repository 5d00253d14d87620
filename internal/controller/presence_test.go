package controller

import (
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
		c, _ := p.candidates(g, clk.Now())
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
	_, next := p.candidates(g, t0.Add(7*time.Second))
	if !next.Equal(t0.Add(8 * time.Second)) {
		t.Errorf("next recheck %v, want the expiry at +8s", next)
	}
}
