package election

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/election-manager/election-manager/internal/leaserecord"
)

// A long retry period, so that the head start (a tenth of it) outlasts the
// successor's write and its way back through the others' informers, even on a
// loaded machine.
var successorTimings = Config{LeaseDuration: 30 * time.Second, RenewDeadline: 15 * time.Second, RetryPeriod: 10 * time.Second}

// startWithSuccessors starts a, which leads alone, then b and c, which follow it,
// every one naming successors[prev] as the successor after prev.
func startWithSuccessors(t *testing.T, key types.NamespacedName, rec *recorder, successors map[string]string) map[string]*process {
	t.Helper()
	timings := successorTimings
	timings.Successor = func(prev string) string { return successors[prev] }
	procs := map[string]*process{"a": startProcess(t, "a", rec, key.Namespace)}
	procs["a"].join(t, key, timings)
	if got := waitLeader(t, rec, key, 10*time.Second, ""); got != "a" {
		t.Fatalf("%s leads, want a, the only candidate", got)
	}
	for _, id := range []string{"b", "c"} {
		procs[id] = startProcess(t, id, rec, key.Namespace)
		e := procs[id].join(t, key, timings)
		eventually(t, 10*time.Second, id+" to see a lead", func() bool { return e.Leader().Holder == "a" })
	}
	return procs
}

// A released Lease is taken by the successor the candidates' configs name, and
// the other follower, woken by the same release, sends nothing: before, both
// raced, and one write of the two was refused after costing kube-apiserver
// nearly a renewal.
func TestTheSuccessorTakesAReleasedLeaseAndTheOtherDoesNotRace(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "lock"}
	rec, hist := newRecorder(t), watchLease(t, key)
	procs := startWithSuccessors(t, key, rec, map[string]string{"a": "c", "b": "c", "c": "b"})
	before := procs["b"].requests.snapshot()

	released := time.Now()
	procs["a"].reg.Stop(key.String())
	if got := waitLeader(t, rec, key, 5*time.Second, "a"); got != "c" {
		t.Fatalf("%s took the released Lease, want c, the successor", got)
	}
	if took := time.Since(released); took > successorTimings.Timings().SuccessorHeadStart() {
		t.Logf("the successor took %s, longer than its head start: b may have raced", took)
	}
	b := procs["b"].reg.Get(key.String())
	eventually(t, 5*time.Second, "b to see c lead", func() bool { return b.Leader().Holder == "c" })
	if after := procs["b"].requests.snapshot(); after["PUT"] != before["PUT"] || after["POST"] != before["POST"] {
		t.Errorf("b wrote while c, the successor, took the Lease: PUTs %d -> %d, POSTs %d -> %d", before["PUT"], after["PUT"], before["POST"], after["POST"])
	}
	if n := len(hist.acquisitions()); n != 2 {
		t.Errorf("%d acquisitions, want 2", n)
	}
	rec.check(t)
	hist.check(t)
}

// A successor that does not come (it is named, but not running) delays the
// takeover by its head start, no more.
func TestASuccessorThatDoesNotComeDelaysTheTakeoverByItsHeadStart(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "lock"}
	rec, hist := newRecorder(t), watchLease(t, key)
	procs := startWithSuccessors(t, key, rec, map[string]string{"a": "ghost"})

	procs["a"].reg.Stop(key.String())
	waitLeader(t, rec, key, 10*time.Second, "a")
	got := acquisition(t, hist, 2)
	releasedAt, err := time.Parse(time.RFC3339Nano, got.Annotations[leaserecord.AnnotationReleasedAt])
	if err != nil {
		t.Fatalf("the takeover's record has no release time: %v", err)
	}
	// Both times are stamped by clocks of this machine: the release by a, the
	// acquisition by its writer.
	headStart := successorTimings.Timings().SuccessorHeadStart()
	waited := got.Spec.AcquireTime.Sub(releasedAt)
	if waited < headStart || waited > headStart+5*time.Second {
		t.Errorf("taken %s after the release, want the head start %s and not much more", waited, headStart)
	}
	if how := got.Annotations[leaserecord.AnnotationAcquiredHow]; how != string(leaserecord.AfterRelease) {
		t.Errorf("taken %s, want %s", how, leaserecord.AfterRelease)
	}
	rec.check(t)
	hist.check(t)
}
