package election

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/election-manager/election-manager/internal/leaserecord"
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
	rec.check(t)
	hist.check(t)
}
