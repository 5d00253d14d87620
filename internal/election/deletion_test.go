package election

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/election-manager/election-manager/internal/leaserecord"
)

// A Lease deleted under its leader, and a candidate that never saw it (it started
// after the deletion, so it has no tombstone): the candidate must create the Lease
// above every epoch the group recorded, and only once the deleted record's holder
// can no longer lead; the old leader stops at once, when it sees the deletion.
func TestDeletedLeaseIsRecreatedAboveTheRecordedEpochs(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "lock"}
	rec, hist := newRecorder(t), watchLease(t, key)
	a := leaderOfTerms(t, rec, ns, key, fast, 3) // epoch 1 would be a repeat
	recorded := lastTerm(t, rec, key, "a").epoch

	deletedAt := time.Now()
	if err := admin.CoordinationV1().Leases(ns).Delete(context.Background(), key.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The old leader sees its Lease gone and stops, without waiting for a renewal
	// to fail.
	eventually(t, fast.RenewDeadline, "a to stop leading after the deletion", func() bool { return rec.leader(key.String()) == "" })
	if stopped := lastTerm(t, rec, key, "a").end.Sub(deletedAt); stopped > fast.RetryPeriod+slack {
		t.Errorf("a stopped leading %s after the deletion, want within a retry period (%s)", stopped, fast.RetryPeriod)
	}

	// c joins with the group's recorded epoch as its floor, as the manager and the
	// elector command give it.
	a.reg.Stop(key.String())
	c := startProcess(t, "c", rec, ns)
	joined := time.Now()
	cfg := fast
	cfg.EpochFloor = func(bool) (int32, error) { return recorded, nil }
	c.join(t, key, cfg)
	eventually(t, fast.LeaseDuration+10*time.Second, "c leading", func() bool { return rec.leader(key.String()) == "c" })
	term := lastTerm(t, rec, key, "c")
	if term.epoch != recorded+1 {
		t.Errorf("c leads at epoch %d, want %d: one above the group's recorded epoch", term.epoch, recorded+1)
	}
	if waited := term.start.Sub(joined); waited < fast.LeaseDuration {
		t.Errorf("c created the Lease %s after finding it missing, want at least leaseDuration (%s): the old holder may still lead", waited, fast.LeaseDuration)
	}
	if n := hist.deleted.Load(); n != 1 {
		t.Errorf("%d deletions seen, want 1", n)
	}
}

// A Lease replaced under its leader by another object (deleted and created again by
// someone else) at a lower epoch: the leader must stop at once, not read the lower
// epoch as its informer lagging and lead on until its renew deadline.
func TestReplacedLeaseEndsLeadershipAtOnce(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "lock"}
	rec := newRecorder(t)
	// A long renew deadline, so that "at once" and "at the deadline" differ.
	timings := Config{LeaseDuration: 20 * time.Second, RenewDeadline: 15 * time.Second, RetryPeriod: 4 * time.Second}
	leaderOfTerms(t, rec, ns, key, timings, 2)

	leases := admin.CoordinationV1().Leases(ns)
	if err := leases.Delete(context.Background(), key.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	now := metav1.NewMicroTime(time.Now())
	foreign := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: ns},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("foreign"), LeaseDurationSeconds: ptr.To[int32](20),
			AcquireTime: &now, RenewTime: &now, LeaseTransitions: ptr.To[int32](1)}}
	replacedAt := time.Now()
	if _, err := leases.Create(context.Background(), foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, timings.RenewDeadline+slack, "a to stop leading", func() bool { return rec.leader(key.String()) == "" })
	if stopped := lastTerm(t, rec, key, "a").end.Sub(replacedAt); stopped > time.Second+slack {
		t.Errorf("a stopped leading %s after its Lease was replaced, want at once (within %s), not at its renew deadline", stopped, time.Second+slack)
	}
}

// The Lease deleted and created again empty by someone else (kubectl replace
// --force, a GitOps tool, a restore): the new object looks never held. A follower
// that saw the old one must neither take it at once — the old holder may still
// lead — nor start the epochs again; the old leader stops at once.
func TestRecreatedEmptyLeaseIsNotTakenAtOnce(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "lock"}
	rec := newRecorder(t)
	leaderOfTerms(t, rec, ns, key, fast, 2)
	epoch := lastTerm(t, rec, key, "a").epoch
	b := startProcess(t, "b", rec, ns)
	b.join(t, key, fast)
	eventually(t, 5*time.Second, "b following a", func() bool { return b.leases.Get(key) != nil })

	leases := admin.CoordinationV1().Leases(ns)
	if err := leases.Delete(context.Background(), key.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	replaced := time.Now()
	if _, err := leases.Create(context.Background(), &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, fast.LeaseDuration+10*time.Second, "a new leader", func() bool {
		id := rec.leader(key.String())
		return id != "" && lastTerm(t, rec, key, id).start.After(replaced)
	})
	next := rec.terms(key.String())
	term := next[len(next)-1]
	if term.epoch <= epoch {
		t.Errorf("%s leads the re-created Lease at epoch %d, not above %d", term.id, term.epoch, epoch)
	}
	if waited := term.start.Sub(replaced); waited < fast.LeaseDuration-slack {
		t.Errorf("%s took the re-created Lease %s after the replacement, before leaseDuration %s: a could still lead", term.id, waited, fast.LeaseDuration)
	}
	if stopped := lastTermBefore(rec, key, "a", replaced).end.Sub(replaced); stopped > fast.RetryPeriod+slack {
		t.Errorf("a stopped %s after its Lease was replaced, want at once", stopped)
	}
}

// lastTermBefore is id's last term that started before t.
func lastTermBefore(rec *recorder, key types.NamespacedName, id string, t time.Time) interval {
	var out interval
	for _, term := range rec.terms(key.String()) {
		if term.id == id && term.start.Before(t) {
			out = term
		}
	}
	return out
}

// leaderOfTerms starts process a as the only candidate and has it lead n terms in
// a row (stopping and joining again), so that the Lease's epoch is n.
func leaderOfTerms(t *testing.T, rec *recorder, ns string, key types.NamespacedName, timings Config, n int) *process {
	t.Helper()
	a := startProcess(t, "a", rec, ns)
	for i := range n {
		if i > 0 {
			a.reg.Stop(key.String())
		}
		a.join(t, key, timings)
		eventually(t, 10*time.Second, fmt.Sprintf("a leading term %d", i+1), func() bool {
			return rec.leader(key.String()) == "a" && lastTerm(t, rec, key, "a").epoch == int32(i+1)
		})
	}
	return a
}

// A kept Lease (leaserecord.Finalizer) deleted under its leader waits, terminating,
// until its epoch is recorded. The leader stops at once; no candidate writes the
// Lease or creates another while it waits, not even past leaseDuration; once the
// finalizer goes, the follower creates it again at once — it waited out the old
// holder from the deletion — above the deleted epoch, and kept.
func TestKeptLeaseWaitsForItsEpochToBeRecorded(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "lock"}
	rec, hist := newRecorder(t), watchLease(t, key)
	kept := fast
	kept.KeepEpoch = true
	a := leaderOfTerms(t, rec, ns, key, kept, 2)
	b := startProcess(t, "b", rec, ns)
	follower := b.join(t, key, kept)
	eventually(t, 5*time.Second, "b following a", func() bool { return follower.Leader().Holder == "a" })
	leases := admin.CoordinationV1().Leases(ns)
	l, err := leases.Get(context.Background(), key.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !leaserecord.Kept(l) {
		t.Fatalf("the Lease's finalizers are %v, want %s", l.Finalizers, leaserecord.Finalizer)
	}
	epoch := leaserecord.Epoch(l)

	before := map[string]map[string]int{"a": a.requests.snapshot(), "b": b.requests.snapshot()}
	deletedAt := time.Now()
	if err := leases.Delete(context.Background(), key.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, fast.RenewDeadline, "a to stop leading after the deletion", func() bool { return rec.leader(key.String()) == "" })
	if stopped := lastTerm(t, rec, key, "a").end.Sub(deletedAt); stopped > fast.RetryPeriod+slack {
		t.Errorf("a stopped leading %s after the deletion, want within a retry period (%s)", stopped, fast.RetryPeriod)
	}
	// Nothing is to happen: wait past the moment a missing Lease would be created.
	time.Sleep(time.Until(deletedAt.Add(fast.LeaseDuration + 2*fast.RetryPeriod)))
	for id, p := range map[string]*process{"a": a, "b": b} {
		if after := p.requests.snapshot(); after["PUT"] != before[id]["PUT"] || after["POST"] != before[id]["POST"] {
			t.Errorf("%s wrote while the Lease was kept: PUTs %d -> %d, POSTs %d -> %d", id, before[id]["PUT"], after["PUT"], before[id]["POST"], after["POST"])
		}
	}
	if l, err = leases.Get(context.Background(), key.Name, metav1.GetOptions{}); err != nil || !leaserecord.Deleting(l) {
		t.Fatalf("the kept Lease is not terminating (err %v)", err)
	}

	// The status writer's part: the epoch recorded, the finalizer goes.
	letGo := time.Now()
	if _, err := leases.Update(context.Background(), leaserecord.Unkept(l), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "a new leader", func() bool { return rec.leader(key.String()) != "" })
	id := rec.leader(key.String())
	term := lastTerm(t, rec, key, id)
	if term.epoch <= epoch {
		t.Errorf("%s leads the re-created Lease at epoch %d, not above the deleted %d", id, term.epoch, epoch)
	}
	if took := term.start.Sub(letGo); took > fast.RetryPeriod+slack {
		t.Errorf("%s created the Lease %s after the old one went, want at once", id, took)
	}
	if l, err = leases.Get(context.Background(), key.Name, metav1.GetOptions{}); err != nil || !leaserecord.Kept(l) {
		t.Errorf("the re-created Lease is not kept (err %v)", err)
	}
	rec.check(t)
	hist.check(t)
}

// The epoch floor is read before every acquisition: fresh before a create, from a
// cache for an object a keeping writer wrote. A kept Lease below the floor (a
// restored backup, a copy made with kubectl) still does not hand out an epoch again.
func TestTheFloorIsAppliedToEveryAcquisitionAndReadFreshForACreate(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "lock"}
	rec := newRecorder(t)
	leases := admin.CoordinationV1().Leases(ns)
	restored := leaserecord.Create(key, leaserecord.Writer{Identity: "ghost", LeaseDuration: time.Second, KeepEpoch: true}, time.Now(), 1)
	if _, err := leases.Create(context.Background(), restored, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var reads []bool
	cfg := fast
	cfg.KeepEpoch = true
	cfg.EpochFloor = func(fresh bool) (int32, error) {
		mu.Lock()
		defer mu.Unlock()
		reads = append(reads, fresh)
		return 5, nil
	}
	b := startProcess(t, "b", rec, ns)
	b.join(t, key, cfg)
	eventually(t, 10*time.Second, "b leading", func() bool { return rec.leader(key.String()) == "b" })
	if term := lastTerm(t, rec, key, "b"); term.epoch != 6 {
		t.Errorf("b took the kept Lease at epoch %d, want 6: above the floor of 5", term.epoch)
	}
	mu.Lock()
	if !slices.Equal(reads, []bool{false}) {
		t.Errorf("floor reads (fresh?) %v before taking a kept Lease, want one from the cache", reads)
	}
	reads = nil
	mu.Unlock()

	if err := leases.Delete(context.Background(), key.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, fast.RenewDeadline, "b to stop leading", func() bool { return rec.leader(key.String()) == "" })
	l, err := leases.Get(context.Background(), key.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leases.Update(context.Background(), leaserecord.Unkept(l), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, fast.LeaseDuration+10*time.Second, "b leading the re-created Lease", func() bool { return rec.leader(key.String()) == "b" })
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(reads, []bool{true}) {
		t.Errorf("floor reads (fresh?) %v before creating the Lease, want one fresh", reads)
	}
}

// The config EpochFloor leaves is the write's own: the elector command learns
// there whether its group's Lease keeps the epoch, and a Lease it creates then
// carries the finalizer from its first write.
func TestAConfigUpdatedWhileReadingTheFloorIsTheWritesOwn(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "lock"}
	rec := newRecorder(t)
	var el atomic.Pointer[Elector]
	// A renewal only every 2s: the Lease read once b leads is the creation's.
	cfg := Config{LeaseDuration: 8 * time.Second, RenewDeadline: 4 * time.Second, RetryPeriod: 2 * time.Second}
	cfg.EpochFloor = func(bool) (int32, error) {
		e := el.Load()
		if e == nil {
			return 0, errors.New("not joined yet") // postpones the write
		}
		c := e.Config()
		c.KeepEpoch, c.Labels = true, map[string]string{"example.com/group": "g"}
		return 0, e.UpdateConfig(c)
	}
	b := startProcess(t, "b", rec, ns)
	el.Store(b.join(t, key, cfg))
	eventually(t, 10*time.Second, "b leading", func() bool { return rec.leader(key.String()) == "b" })
	l, err := admin.CoordinationV1().Leases(ns).Get(context.Background(), key.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !l.Spec.AcquireTime.Equal(l.Spec.RenewTime) {
		t.Fatalf("the Lease was renewed (acquired %s, renewed %s) before the test read it: it cannot tell the creation's write", l.Spec.AcquireTime, l.Spec.RenewTime)
	}
	if !leaserecord.Kept(l) || l.Labels["example.com/group"] != "g" {
		t.Errorf("the created Lease has finalizers %v and labels %v: the config the floor read left was not the create's", l.Finalizers, l.Labels)
	}
}
