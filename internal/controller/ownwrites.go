package controller

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// ownWrites remembers the status writes the cache has not shown yet. A status
// write is based on the cached group's resourceVersion (the optimistic lock), so a
// reconcile that runs before the cache shows this writer's last write is bound to
// conflict: the term changes of a handover (released, then taken) come in quick
// succession. Under load every such conflict was an error, retried after the
// workqueue's growing per-item back-off, and status fell minutes behind the Lease.
// Instead, such a reconcile waits for the cache, and the write's arrival in the
// cache wakes the group.
type ownWrites struct {
	mu      sync.Mutex
	pending map[types.NamespacedName]ownWrite
}

type ownWrite struct {
	// base is the version the write was based on, written the one it produced.
	base, written string
}

// staleRecheck wakes a group that waits for its write in case the cache never
// shows that very version (a relist past it): the wait costs no API request.
const staleRecheck = time.Second

func newOwnWrites() *ownWrites {
	return &ownWrites{pending: map[types.NamespacedName]ownWrite{}}
}

// wrote records a successful write of g's status from version base. A write the
// server found to change nothing keeps the version: there is nothing to wait for.
func (o *ownWrites) wrote(g client.Object, base string) {
	if g.GetResourceVersion() == base {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pending[client.ObjectKeyFromObject(g)] = ownWrite{base: base, written: g.GetResourceVersion()}
}

// stale tells whether the cached g is still the version this writer last wrote
// over. The cache only moves forward and the write was applied right on top of
// base, so any other version is the write or a later one.
func (o *ownWrites) stale(g client.Object) bool {
	key := client.ObjectKeyFromObject(g)
	o.mu.Lock()
	defer o.mu.Unlock()
	w, ok := o.pending[key]
	if ok && g.GetResourceVersion() == w.base {
		return true
	}
	delete(o.pending, key)
	return false
}

// forget drops what is remembered of a deleted group.
func (o *ownWrites) forget(key types.NamespacedName) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.pending, key)
}

// arrived is the predicate that lets through the update that shows a pending
// write: the status-only change the other predicates drop.
func (o *ownWrites) arrived() predicate.Predicate {
	return predicate.NewPredicateFuncs(func(obj client.Object) bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		w, ok := o.pending[client.ObjectKeyFromObject(obj)]
		return ok && obj.GetResourceVersion() == w.written
	})
}
