package election

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/election-manager/election-manager/internal/leaserecord"
)

// A leader told to step down ends its term and releases, so the other candidate
// takes over at once (no leaseDuration); it does not take the Lease back within
// its back-off, even once the Lease is free, and campaigns again after it.
func TestStepDownReleasesAndBacksOff(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "lock"}
	rec, hist := newRecorder(t), watchLease(t, key)
	procs, electors := map[string]*process{}, map[string]*Elector{}
	for _, id := range []string{"a", "b"} {
		procs[id] = startProcess(t, id, rec, ns)
		electors[id] = procs[id].join(t, key, fast)
	}
	leader := waitLeader(t, rec, key, 10*time.Second, "")
	other := map[string]string{"a": "b", "b": "a"}[leader]
	epoch := leaserecord.Epoch(hist.last())

	// A step-down asked for another term leaves this one alone.
	electors[leader].StepDown(epoch+1, time.Minute, "another term")
	time.Sleep(2 * fast.RetryPeriod) // nothing to poll: it must not happen
	if got := rec.leader(key.String()); got != leader || len(rec.terms(key.String())) != 1 {
		t.Fatalf("after a step-down for another term: %q leads, %d terms", got, len(rec.terms(key.String())))
	}

	const backoff = 4 * time.Second
	asked := time.Now()
	electors[leader].StepDown(epoch, backoff, "told to")
	if got := waitLeader(t, rec, key, 5*time.Second, leader); got != other {
		t.Fatalf("%s leads after %s stepped down", got, leader)
	}
	if took := time.Since(asked); took > fast.RetryPeriod+slack {
		t.Errorf("the other took over %s after the step-down, want within a retry period", took)
	}
	stepped := lastTerm(t, rec, key, leader).end
	if got := acquisition(t, hist, 2); got.Annotations[leaserecord.AnnotationReleasedBy] != leader || leaserecord.Epoch(got) != epoch+1 {
		t.Errorf("the acquisition after the step-down: epoch %d (want %d), annotations %v", leaserecord.Epoch(got), epoch+1, got.Annotations)
	}

	// The other leaves, releasing: the Lease is free, but not for the one backing off.
	procs[other].reg.Stop(key.String())
	if got := waitLeader(t, rec, key, backoff+5*time.Second, other); got != leader {
		t.Fatalf("%s leads, want %s back after its back-off", got, leader)
	}
	back := lastTerm(t, rec, key, leader).start.Sub(stepped)
	t.Logf("%s stepped down %s after being asked; took the Lease back %s later (back-off %s)",
		leader, stepped.Sub(asked).Round(time.Millisecond), back.Round(time.Millisecond), backoff)
	if back < backoff {
		t.Errorf("%s took the Lease back %s after stepping down, within its back-off %s", leader, back, backoff)
	}
	if back > backoff+fast.RetryPeriod+slack {
		t.Errorf("%s took the Lease back %s after stepping down, want soon after its back-off %s", leader, back, backoff)
	}
	rec.check(t)
	hist.check(t)
}

// A follower told to step down only backs off.
func TestStepDownWhileFollowingBacksOff(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "lock"}
	rec := newRecorder(t)
	p := startProcess(t, "a", rec, ns)
	const backoff = 2 * time.Second
	e, err := New(Config{Lease: key, Identity: "a", LeaseDuration: fast.LeaseDuration, RenewDeadline: fast.RenewDeadline,
		RetryPeriod: fast.RetryPeriod}, p.client.CoordinationV1(), p.leases, Callbacks{
		OnStartedLeading: func(epoch int32) { rec.started(key.String(), "a", epoch) },
		OnStoppedLeading: func() { rec.stopped(key.String(), "a") },
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.StepDown(0, backoff, "not ready")
	started := time.Now()
	e.Start(t.Context())
	t.Cleanup(e.Stop)
	waitLeader(t, rec, key, backoff+5*time.Second, "")
	if took := lastTerm(t, rec, key, "a").start.Sub(started); took < backoff {
		t.Errorf("led %s after the step-down, within its back-off %s", took, backoff)
	}
}
