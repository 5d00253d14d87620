package controller

import (
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/election-manager/election-manager/internal/election"
)

// leaseClock remembers when this process last saw each Lease's record change, on its
// own clock. Expiry is measured from there, as client-go's electors measure it, so
// that clock skew between the holder and the observer does not matter.
type leaseClock struct {
	clock clock.Clock

	mu   sync.Mutex
	seen map[types.NamespacedName]seenRecord
}

type seenRecord struct {
	spec coordinationv1.LeaseSpec
	at   time.Time
}

func newLeaseClock(c clock.Clock) *leaseClock {
	return &leaseClock{clock: c, seen: map[types.NamespacedName]seenRecord{}}
}

// observe records l (nil: deleted) and tells whether the term it shows changed: a
// new holder or epoch, a release, or the Lease coming or going. Renewals only move
// the clock.
func (c *leaseClock) observe(key types.NamespacedName, l *coordinationv1.Lease) (termChanged bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	prev, known := c.seen[key]
	if l == nil {
		delete(c.seen, key)
		return known
	}
	if known && equality.Semantic.DeepEqual(prev.spec, l.Spec) {
		return false
	}
	c.seen[key] = seenRecord{spec: *l.Spec.DeepCopy(), at: c.clock.Now()}
	return !known || election.HolderOf(l) != holderOfSpec(prev.spec) || election.EpochOf(l) != epochOfSpec(prev.spec)
}

// expiry is when l's holder expires on this observer's clock: leaseDurationSeconds
// after the record was last seen to change. ok is false when there is no holder.
func (c *leaseClock) expiry(key types.NamespacedName, l *coordinationv1.Lease) (at time.Time, ok bool) {
	if election.HolderOf(l) == "" {
		return time.Time{}, false
	}
	c.mu.Lock()
	seen, known := c.seen[key]
	c.mu.Unlock()
	if !known || !equality.Semantic.DeepEqual(seen.spec, l.Spec) {
		// Not seen through the event stream yet: start the clock now.
		c.observe(key, l)
		seen.at = c.clock.Now()
	}
	var seconds int32
	if l.Spec.LeaseDurationSeconds != nil {
		seconds = *l.Spec.LeaseDurationSeconds
	}
	return seen.at.Add(time.Duration(seconds) * time.Second), true
}

func holderOfSpec(s coordinationv1.LeaseSpec) string {
	return election.HolderOf(&coordinationv1.Lease{Spec: s})
}

func epochOfSpec(s coordinationv1.LeaseSpec) int32 {
	return election.EpochOf(&coordinationv1.Lease{Spec: s})
}
