package election

import (
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/election-manager/election-manager/internal/leaserecord"
	"github.com/election-manager/election-manager/internal/testutil"
)

// A leader told to hand over releases the Lease for the named candidate, which takes
// it at once with a new epoch; the third candidate, woken by the same release, waits.
func TestHandOverToANamedCandidate(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "lock"}
	rec, hist := newRecorder(t), watchLease(t, key)
	procs := startCandidates(t, key, rec, fast, "a", "b", "c")
	leader := waitLeader(t, rec, key, 10*time.Second, "")
	to := map[string]string{"a": "c", "b": "c", "c": "a"}[leader]
	epoch := leaserecord.Epoch(hist.last())

	cfg := fast
	cfg.Lease, cfg.Identity, cfg.ReleaseOnCancel, cfg.HandOverTo = key, leader, true, to
	asked := time.Now()
	if _, err := procs[leader].reg.Ensure(key.String(), cfg, Callbacks{}); err != nil {
		t.Fatal(err)
	}
	if got := waitLeader(t, rec, key, 5*time.Second, leader); got != to {
		t.Fatalf("%s leads after the handover to %s", got, to)
	}
	if took := time.Since(asked); took > time.Second {
		t.Errorf("the handover took %s, want well within a second", took)
	}
	got := acquisition(t, hist, 2)
	if leaserecord.Epoch(got) != epoch+1 || got.Annotations[leaserecord.AnnotationAcquiredHow] != string(leaserecord.Handover) ||
		got.Annotations[leaserecord.AnnotationReleasedBy] != leader || got.Annotations[leaserecord.AnnotationHandoverTo] != "" {
		t.Errorf("the acquisition after the handover: epoch %d (want %d), annotations %v", leaserecord.Epoch(got), epoch+1, got.Annotations)
	}
	third := map[string]string{"a": "b", "b": "a", "c": "b"}[leader]
	if third == to {
		third = "c"
	}
	for _, term := range rec.terms(key.String()) {
		if term.id == third && term.start.After(asked) {
			t.Errorf("%s took the Lease reserved for %s (epoch %d)", third, to, term.epoch)
		}
	}
	if n := len(hist.acquisitions()); n != 2 {
		t.Errorf("%d acquisitions, want 2: the first election and the handover", n)
	}
	rec.check(t)
	hist.check(t)
}

// A Lease handed over to a candidate that cannot take it (cut off from the API
// server) is reserved for it only for timing.HandoverReservation: then the other
// candidates elect as usual, instead of waiting a whole leaseDuration.
func TestHandOverReservationLapses(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "lock"}
	timings := Config{LeaseDuration: 10 * time.Second, RenewDeadline: 6 * time.Second, RetryPeriod: time.Second}
	reserve := timings.Timings().HandoverReservation()
	rec, hist := newRecorder(t), watchLease(t, key)
	procs := startCandidates(t, key, rec, timings, "a", "b", "c")
	leader := waitLeader(t, rec, key, 10*time.Second, "")
	to := map[string]string{"a": "c", "b": "c", "c": "a"}[leader]
	procs[to].proxy.SetMode(testutil.Blackhole)

	cfg := timings
	cfg.Lease, cfg.Identity, cfg.ReleaseOnCancel, cfg.HandOverTo = key, leader, true, to
	if _, err := procs[leader].reg.Ensure(key.String(), cfg, Callbacks{}); err != nil {
		t.Fatal(err)
	}
	// Once it has handed over, the old leader leaves: an elector still told to hand
	// over would take the Lease back after the lapse and hand it over again.
	eventually(t, 5*time.Second, "the release for "+to, func() bool { return leaserecord.HandedOverTo(hist.last()) == to })
	procs[leader].reg.Stop(key.String())
	next := waitLeader(t, rec, key, timings.LeaseDuration+5*time.Second, leader)
	if next == to {
		t.Fatalf("%s took the Lease while cut off", to)
	}
	got := acquisition(t, hist, 2)
	released, err := time.Parse(time.RFC3339Nano, got.Annotations[leaserecord.AnnotationReleasedAt])
	if err != nil {
		t.Fatalf("no release time on %v: %v", got.Annotations, err)
	}
	waited := got.Spec.AcquireTime.Sub(released)
	if got.Annotations[leaserecord.AnnotationAcquiredHow] != string(leaserecord.AfterRelease) || waited < reserve-slack || waited > reserve+2*slack+timings.RetryPeriod {
		t.Errorf("%s took the Lease %s after the handover to %s (%s), want about the reservation %s, not leaseDuration %s",
			leaserecord.Holder(got), waited, to, got.Annotations[leaserecord.AnnotationAcquiredHow], reserve, timings.LeaseDuration)
	}
	procs[to].proxy.SetMode(testutil.Pass)
}

// A handover to an identity that never comes costs one reservation: the Lease is
// then elected as usual, and no holder hands over to it again under the same
// attempt, in this term or a later one. A new attempt tries once more.
func TestHandoverToAnAbsentTargetLapsesOncePerAttempt(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "lock"}
	rec, hist := newRecorder(t), watchLease(t, key)
	procs := startCandidates(t, key, rec, fast, "a", "b")
	waitLeader(t, rec, key, 10*time.Second, "")
	handTo := func(attempt string) {
		for id, p := range procs {
			cfg := fast
			cfg.Lease, cfg.Identity, cfg.ReleaseOnCancel = key, id, true
			cfg.HandOverTo, cfg.HandOverAttempt = "ghost", attempt
			if _, err := p.reg.Ensure(key.String(), cfg, Callbacks{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	reserve := fast.Timings().HandoverReservation()
	handTo("1")
	// Long enough for several lapses, had every new holder handed over again.
	time.Sleep(reserve + 3*fast.LeaseDuration)
	if n := handoversTo(hist, "ghost"); n != 1 {
		t.Fatalf("%d handovers to ghost under one attempt, want 1", n)
	}
	if leaserecord.Holder(hist.last()) == "" {
		t.Errorf("nobody holds the Lease after the lapse")
	}
	// The holder dies: the next term still remembers the lapse.
	holder := leaserecord.Holder(hist.last())
	procs[holder].proxy.SetMode(testutil.Blackhole)
	waitLeader(t, rec, key, fast.LeaseDuration+fast.RenewDeadline+slack, holder)
	time.Sleep(reserve + slack)
	if n := handoversTo(hist, "ghost"); n != 1 {
		t.Errorf("%d handovers to ghost after the holder changed, want still 1", n)
	}
	procs[holder].proxy.SetMode(testutil.Pass)
	handTo("2")
	eventually(t, reserve+2*slack, "a second attempt", func() bool { return handoversTo(hist, "ghost") == 2 })
	time.Sleep(reserve + fast.LeaseDuration)
	if n := handoversTo(hist, "ghost"); n != 2 {
		t.Errorf("%d handovers to ghost after two attempts, want 2", n)
	}
}

// handoversTo counts the releases for identity to in the Lease's history.
func handoversTo(h *history, to string) int {
	n := 0
	var prev *coordinationv1.Lease
	for _, cur := range h.all() {
		if leaserecord.HandedOverTo(cur) == to && leaserecord.HandedOverTo(prev) != to {
			n++
		}
		prev = cur
	}
	return n
}
