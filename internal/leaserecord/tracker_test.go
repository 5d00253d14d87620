package leaserecord

import (
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

func TestTrackerCountsFromWhenTheRecordChanged(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(t0)
	tr := NewTracker(clk)
	l := stored(Create(key, writer("a"), t0, 1), "1")
	l.UID = "u1"
	tr.Since(key, l)

	clk.SetTime(t0.Add(5 * time.Second))
	meta := l.DeepCopy()
	meta.ResourceVersion, meta.Labels = "2", map[string]string{"y": "z"}
	if exp, ok := tr.Expiry(key, meta, time.Minute); !ok || !exp.Equal(t0.Add(15*time.Second)) {
		t.Errorf("a metadata change moved the expiry: %v, want %v", exp, t0.Add(15*time.Second))
	}

	renewed := Renew(meta, writer("a"), clk.Now())
	if exp, _ := tr.Expiry(key, renewed, time.Minute); !exp.Equal(t0.Add(20 * time.Second)) {
		t.Errorf("a renewal seen at +5s expires at %v, want %v", exp, t0.Add(20*time.Second))
	}

	recreated := renewed.DeepCopy()
	recreated.UID = "u2"
	clk.SetTime(t0.Add(7 * time.Second))
	if since := tr.Since(key, recreated); !since.Equal(t0.Add(7 * time.Second)) {
		t.Errorf("the same record on a new object is a new record: since %v", since)
	}
	if _, ok := tr.Expiry(key, Release(recreated, "a", clk.Now()), time.Minute); ok {
		t.Errorf("a released record has no expiry")
	}
}

func TestTrackerRemembersAndForgetsDeletions(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(t0)
	tr := NewTracker(clk)
	l := stored(Create(key, writer("a"), t0, 3), "1")
	l.UID = "u1"
	tr.Since(key, l)
	clk.SetTime(t0.Add(time.Second))
	if !tr.Delete(key, l, false) {
		t.Errorf("Delete of a known Lease reported unknown")
	}
	g, ok := tr.Gone(key)
	if !ok || Epoch(g.Lease) != 3 || !g.Until(time.Minute).Equal(t0.Add(16*time.Second)) {
		t.Fatalf("tombstone %+v %v, want epoch 3 until +16s", g, ok)
	}

	// A reader behind the deletion (another handler, an older copy) does not bring
	// the deleted object back.
	tr.Since(key, l)
	if g, ok := tr.Gone(key); !ok || g.Lease.UID != "u1" {
		t.Errorf("a late copy of the deleted object erased its tombstone")
	}

	// A new object: the old one's tombstone stays (its holder may still lead), and
	// a late delete of the old object does not bury the new one.
	newer := l.DeepCopy()
	newer.UID = "u2"
	tr.Since(key, newer)
	if g, ok := tr.Gone(key); !ok || g.Lease.UID != "u1" {
		t.Errorf("a new object erased the old one's tombstone")
	}
	if tr.Delete(key, l, false) {
		t.Errorf("a stale delete counted")
	}
	if seen, _ := tr.Size(); seen != 1 {
		t.Errorf("a stale delete forgot the live Lease")
	}

	// Tombstones go once no reader can need them.
	tr.Delete(key, newer, false)
	clk.SetTime(t0.Add(2 * time.Hour))
	other := stored(Create(key, writer("a"), t0, 1), "5")
	other.Name = "other"
	tr.Delete(types.NamespacedName{Namespace: "ns", Name: "other"}, other, false) // prunes the expired ones
	if seen, gone := tr.Size(); seen != 0 || gone != 1 {
		t.Errorf("after pruning: %d seen, %d tombstones, want 0 and 1 (only the newest)", seen, gone)
	}
}

// A Lease replaced by another object of the same name without a delete event (a
// relist) is buried like a deleted one.
func TestTrackerBuriesAReplacedObject(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(t0)
	tr := NewTracker(clk)
	old := stored(Create(key, writer("a"), t0, 7), "1")
	old.UID = "u1"
	tr.Since(key, old)
	clk.SetTime(t0.Add(time.Second))
	fresh := &coordinationv1.Lease{}
	fresh.Namespace, fresh.Name, fresh.UID = "ns", "lock", "u2"
	tr.Since(key, fresh)
	g, ok := tr.Gone(key)
	if !ok || g.Lease.UID != "u1" || Epoch(g.Lease) != 7 || !g.Until(time.Minute).Equal(t0.Add(16*time.Second)) {
		t.Errorf("tombstone of the replaced object %+v %v, want u1 at epoch 7 until +16s", g, ok)
	}
}

// A deletion learned of by a relist carries only the last state known: even a
// released one counts as held, for at least the election's own duration.
func TestTrackerUnknownFinalStateCountsAsHeld(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(t0)
	tr := NewTracker(clk)
	released := stored(Release(stored(Create(key, writer("a"), t0, 5), "1"), "a", t0), "2")
	tr.Delete(key, released, true)
	g, _ := tr.Gone(key)
	if want := t0.Add(15 * time.Second); !g.Until(15 * time.Second).Equal(want) {
		t.Errorf("unknown final state until %v, want %v", g.Until(15*time.Second), want)
	}
	tr.Delete(key, released, false)
	if g, _ := tr.Gone(key); !g.Until(15 * time.Second).Equal(t0) {
		t.Errorf("a known release is free at once, got until %v", g.Until(15*time.Second))
	}
}

// Prune forgets expired tombstones without waiting for another deletion, and keeps
// the ones a reader may still need.
func TestTrackerPrunesWithoutAnotherDeletion(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(t0)
	tr := NewTracker(clk)
	for i, name := range []string{"a", "b"} {
		l := stored(Create(key, writer("x"), t0, 1), "1")
		l.Name, l.UID = name, types.UID(name)
		l.Spec.LeaseDurationSeconds = ptr.To(int32(2 + 10*i)) // a: 2s, b: 12s
		k := types.NamespacedName{Namespace: "ns", Name: name}
		tr.Since(k, l)
		tr.Delete(k, l, false)
	}
	clk.SetTime(t0.Add(5 * time.Second))
	tr.Prune()
	if _, gone := tr.Size(); gone != 1 {
		t.Errorf("%d tombstones at +5s, want 1 (b's holder may lead until +12s)", gone)
	}
	clk.SetTime(t0.Add(12 * time.Second))
	tr.Prune()
	if seen, gone := tr.Size(); seen != 0 || gone != 0 {
		t.Errorf("%d records, %d tombstones at +12s, want none", seen, gone)
	}
}

// A Lease being deleted (kept by a finalizer) is gone from the first sight of it,
// and stays remembered while it waits, however long: its holder's wait counts from
// that sight. A write to it meanwhile (a writer that takes it for a live Lease)
// starts the wait again; the finalizer's removal and the final deletion do not.
func TestTrackerBuriesALeaseBeingDeletedAtFirstSight(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(t0)
	tr := NewTracker(clk)
	l := stored(Create(key, writer("a"), t0, 3), "1")
	l.UID = "u1"
	tr.Since(key, l)

	deleting := l.DeepCopy()
	deleting.ResourceVersion, deleting.DeletionTimestamp, deleting.Finalizers = "2", &metav1.Time{Time: t0}, []string{Finalizer}
	clk.SetTime(t0.Add(time.Second))
	tr.Since(key, deleting)
	if g, ok := tr.Gone(key); !ok || !g.At.Equal(t0.Add(time.Second)) || !g.Terminating || Epoch(g.Lease) != 3 {
		t.Fatalf("tombstone %+v (found %v), want the record at epoch 3, buried at +1s, terminating", g, ok)
	}

	clk.SetTime(t0.Add(time.Hour + 2*time.Minute)) // past every prune bound
	tr.Prune()
	if _, ok := tr.Gone(key); !ok {
		t.Fatal("the tombstone of a Lease still being deleted was pruned")
	}
	renewed := Renew(deleting, writer("a"), clk.Now())
	renewed.ResourceVersion = "3"
	tr.Since(key, renewed)
	if g, _ := tr.Gone(key); !g.At.Equal(clk.Now()) {
		t.Errorf("a renewal of the Lease being deleted left the tombstone at %v, want %v", g.At, clk.Now())
	}
	written := clk.Now()

	clk.SetTime(written.Add(time.Second))
	unkept := Unkept(renewed)
	unkept.ResourceVersion = "4"
	tr.Since(key, unkept)
	tr.Delete(key, unkept, false)
	if g, ok := tr.Gone(key); !ok || !g.At.Equal(written) || g.Terminating {
		t.Errorf("after the finalizer went and the Lease with it: tombstone %+v (found %v), want buried at %v, no longer terminating", g, ok, written)
	}
}

// How a Lease kept for long ends in the tracker. Gone after a relist (its final
// state unknown: it may have been written while the watch was down), it counts
// as held from then. Gone for certain, it is remembered a Duration after it went,
// not after it was first seen being deleted, so that late copies of it are known
// for what they are. Replaced by another object before its deletion was seen, it
// is gone then too, and pruned in time.
func TestTrackerEndsALeaseKeptForLong(t *testing.T) {
	deleting := stored(Create(key, writer("a"), t0, 3), "1")
	deleting.UID, deleting.DeletionTimestamp, deleting.Finalizers = "u1", &metav1.Time{Time: t0}, []string{Finalizer}
	later := t0.Add(time.Hour) // far past its Duration (15s)

	t.Run("final state unknown", func(t *testing.T) {
		clk := clocktesting.NewFakePassiveClock(t0)
		tr := NewTracker(clk)
		tr.Since(key, deleting)
		clk.SetTime(later)
		tr.Delete(key, deleting, true)
		if g, ok := tr.Gone(key); !ok || !g.Unknown || !g.At.Equal(later) {
			t.Errorf("tombstone %+v (found %v), want one of unknown final state, from %v", g, ok, later)
		}
	})
	t.Run("gone for certain", func(t *testing.T) {
		clk := clocktesting.NewFakePassiveClock(t0)
		tr := NewTracker(clk)
		tr.Since(key, deleting)
		clk.SetTime(later)
		tr.Delete(key, deleting, false)
		if g, ok := tr.Gone(key); !ok || !g.At.Equal(t0) {
			t.Fatalf("tombstone %+v (found %v), want the first sighting's, kept after the deletion", g, ok)
		}
		live := deleting.DeepCopy()
		live.DeletionTimestamp = nil
		if since := tr.Since(key, live); !since.Equal(later) {
			t.Errorf("a late copy of the deleted object counts from %v, want now (%v)", since, later)
		}
		clk.SetTime(later.Add(16 * time.Second))
		tr.Prune()
		if _, ok := tr.Gone(key); ok {
			t.Error("the tombstone outlived its Duration after the deletion")
		}
	})
	t.Run("replaced", func(t *testing.T) {
		clk := clocktesting.NewFakePassiveClock(t0)
		tr := NewTracker(clk)
		tr.Since(key, deleting)
		clk.SetTime(later)
		next := stored(Create(key, writer("b"), later, 4), "5")
		next.UID = "u2"
		tr.Since(key, next)
		clk.SetTime(later.Add(16 * time.Second))
		tr.Prune()
		if g, ok := tr.Gone(key); ok {
			t.Errorf("the replaced object's tombstone %+v is kept for ever", g)
		}
	})
}
