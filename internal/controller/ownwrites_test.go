package controller

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	crevent "sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/election-manager/election-manager/api/v1alpha1"
)

func groupAt(rv string) *v1alpha1.LeaderGroup {
	return &v1alpha1.LeaderGroup{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "g", ResourceVersion: rv}}
}

func TestAReconcileWaitsForTheCacheToShowTheLastStatusWrite(t *testing.T) {
	o := newOwnWrites()
	if o.stale(groupAt("10")) {
		t.Fatal("stale before any write")
	}
	o.wrote(groupAt("11"), "10") // written from 10, produced 11

	if !o.stale(groupAt("10")) {
		t.Fatal("the cache still at the write's base: want stale")
	}
	arrived := o.arrived()
	if arrived.Update(crevent.UpdateEvent{ObjectOld: groupAt("9"), ObjectNew: groupAt("10")}) {
		t.Fatal("an update to another version let through")
	}
	if !arrived.Update(crevent.UpdateEvent{ObjectOld: groupAt("10"), ObjectNew: groupAt("11")}) {
		t.Fatal("the update showing the write was not let through")
	}
	// The write, or anything after it: no longer stale, and forgotten.
	if o.stale(groupAt("12")) {
		t.Fatal("a version after the write: want not stale")
	}
	if arrived.Update(crevent.UpdateEvent{ObjectOld: groupAt("10"), ObjectNew: groupAt("11")}) {
		t.Fatal("a write already seen let through again")
	}
}

// A patch the server found to change nothing keeps the version: waiting for another
// would wait forever.
func TestAWriteThatChangedNothingIsNotWaitedFor(t *testing.T) {
	o := newOwnWrites()
	o.wrote(groupAt("10"), "10")
	if o.stale(groupAt("10")) {
		t.Fatal("stale after a no-op write: the group would never be written again")
	}
}
