package leaserecord

import (
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// tombstoneBound caps how long a deleted record is remembered when it names no
// duration: a memory bound, far above any election's leaseDuration.
const tombstoneBound = time.Hour

// Tracker remembers, for each Lease, when this process first saw its current record
// on its own clock, and the last record of each Lease it saw deleted. Expiry is
// counted from there, as client-go's electors count it, so that clock skew between
// the holder and the observer does not matter. One Tracker serves a process: the
// informer feeds it, and electors and the controller read it.
type Tracker struct {
	clock clock.PassiveClock

	mu   sync.Mutex
	seen map[types.NamespacedName]seenRecord
	gone map[types.NamespacedName]Tombstone
}

type seenRecord struct {
	spec coordinationv1.LeaseSpec
	uid  types.UID
	at   time.Time
}

// Tombstone is a Lease seen deleted: its last record, and when (local clock).
type Tombstone struct {
	Lease *coordinationv1.Lease
	At    time.Time
}

// NewTracker returns an empty tracker reading c.
func NewTracker(c clock.PassiveClock) *Tracker {
	return &Tracker{clock: c, seen: map[types.NamespacedName]seenRecord{}, gone: map[types.NamespacedName]Tombstone{}}
}

// Clock is the tracker's clock: every instant it returns is on it.
func (t *Tracker) Clock() clock.PassiveClock { return t.clock }

// Since is when this process first saw the record l of key as it is (spec and
// object); a record not seen before is seen now. Handlers call it for every
// version they get, and readers for the version they read (which a cache may hold
// before its event is handled): the first call starts the clock.
func (t *Tracker) Since(key types.NamespacedName, l *coordinationv1.Lease) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.gone, key)
	prev, known := t.seen[key]
	if known && prev.uid == l.UID && SameRecord(&coordinationv1.Lease{Spec: prev.spec}, l) {
		return prev.at
	}
	now := t.clock.Now()
	t.seen[key] = seenRecord{spec: *l.Spec.DeepCopy(), uid: l.UID, at: now}
	return now
}

// Delete records that the Lease key was deleted, last being its final record, and
// tells whether it was known. Expired tombstones are pruned here (see Prune).
func (t *Tracker) Delete(key types.NamespacedName, last *coordinationv1.Lease) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	prev, known := t.seen[key]
	if known && prev.uid != last.UID {
		return false // a late event about an object already replaced
	}
	delete(t.seen, key)
	now := t.clock.Now()
	t.gone[key] = Tombstone{Lease: last.DeepCopy(), At: now}
	t.prune(now)
	return known
}

// Prune forgets the tombstones no reader needs any more: a deleted record's holder
// leads for its Duration after the deletion at the latest. Delete prunes too; a
// process calls Prune from time to time so that the last burst of deletions is
// not remembered for ever.
func (t *Tracker) Prune() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.prune(t.clock.Now())
}

func (t *Tracker) prune(now time.Time) {
	for k, g := range t.gone {
		if !now.Before(g.At.Add(Duration(g.Lease, tombstoneBound))) {
			delete(t.gone, k)
		}
	}
}

// Expiry is when l's holder expires on this clock: its Duration (fallback when the
// record names none) after the record was first seen as it is. ok is false when l
// names no holder.
func (t *Tracker) Expiry(key types.NamespacedName, l *coordinationv1.Lease, fallback time.Duration) (at time.Time, ok bool) {
	if Holder(l) == "" {
		return time.Time{}, false
	}
	return t.Since(key, l).Add(Duration(l, fallback)), true
}

// Gone returns the last record of key if this process saw it deleted (within
// tombstoneBound): its epoch must not be handed out again, and its holder may
// lead until Until.
func (t *Tracker) Gone(key types.NamespacedName) (Tombstone, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.gone[key]
	return g, ok
}

// Until is when the deleted record's holder stops leading at the latest: its
// Duration (fallback when it names none) after the deletion was seen.
func (g Tombstone) Until(fallback time.Duration) time.Time {
	if Holder(g.Lease) == "" {
		return g.At
	}
	return g.At.Add(Duration(g.Lease, fallback))
}

// Size counts the Leases and tombstones remembered (tests and metrics).
func (t *Tracker) Size() (seen, gone int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.seen), len(t.gone)
}
