package leaserecord

import (
	"slices"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A writer that keeps the epoch puts the finalizer on every write that hands out or
// keeps an epoch, once, next to other parties' finalizers; a release keeps what is
// there. Unkept takes off only ours, from a copy.
func TestKeptWritesCarryTheFinalizerOnce(t *testing.T) {
	w := writer("a")
	w.KeepEpoch = true
	created := stored(Create(key, w, t0, 1), "1")
	created.Finalizers = append(created.Finalizers, "other.example/hold")
	writes := map[string]*coordinationv1.Lease{
		"create":  created,
		"renew":   Renew(created, w, t0.Add(time.Second)),
		"acquire": Acquire(created, w, t0.Add(20*time.Second), AfterExpiry, 0),
		"release": Release(created, "a", t0.Add(time.Second)),
	}
	for name, l := range writes {
		if !Kept(l) || len(l.Finalizers) != 2 || !slices.Contains(l.Finalizers, "other.example/hold") {
			t.Errorf("%s: finalizers %v, want ours once and the other party's", name, l.Finalizers)
		}
	}
	if plain := Acquire(created, writer("b"), t0.Add(20*time.Second), AfterExpiry, 0); !Kept(plain) {
		t.Errorf("a writer that does not keep the epoch removed the finalizer: %v", plain.Finalizers)
	}
	if l := Create(key, writer("a"), t0, 1); Kept(l) {
		t.Errorf("a writer that does not keep the epoch set the finalizer: %v", l.Finalizers)
	}

	unkept := Unkept(created)
	if Kept(unkept) || !slices.Equal(unkept.Finalizers, []string{"other.example/hold"}) || unkept.ResourceVersion != "1" {
		t.Errorf("Unkept: finalizers %v, resourceVersion %q; want only the other party's, guarded by version 1", unkept.Finalizers, unkept.ResourceVersion)
	}
	if !Kept(created) {
		t.Error("Unkept changed its input")
	}
}

// The API server refuses a new finalizer on an object being deleted.
func TestNoFinalizerIsAddedToALeaseBeingDeleted(t *testing.T) {
	l := stored(Create(key, writer("a"), t0, 1), "1")
	l.DeletionTimestamp = &metav1.Time{Time: t0}
	w := writer("a")
	w.KeepEpoch = true
	if !Deleting(l) {
		t.Fatal("Deleting: false for a Lease with a deletion timestamp")
	}
	if got := Renew(l, w, t0.Add(time.Second)); Kept(got) {
		t.Errorf("finalizers %v added to a Lease being deleted", got.Finalizers)
	}
}
