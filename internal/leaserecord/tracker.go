package leaserecord

import (
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// tombstoneBound caps how long a deleted record is remembered: a memory bound, far
// above any election's leaseDuration.
const tombstoneBound = time.Hour

// Tracker remembers, for each Lease, when this process first saw its current record
// on its own clock, and the last record of each Lease object it saw go (deleted, or
// replaced by another object of the same name). Expiry is counted from there, as
// client-go's electors count it, so that clock skew between the holder and the
// observer does not matter. One Tracker serves a process: the informer feeds it,
// and electors and the controller read it.
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

// Tombstone is a Lease object seen gone: its last known record, and when (local
// clock). Unknown: the informer lost track (a relist) and the record is only the
// last one it knew, not the final one.
type Tombstone struct {
	Lease   *coordinationv1.Lease
	At      time.Time
	Unknown bool
	// Terminating: the object still exists, being deleted (see Deleting). It is
	// remembered until it goes, however long that takes.
	Terminating bool
	// went is when a terminating object was seen gone: it is pruned counting from
	// then, so that late copies of it are still known for what they are.
	went time.Time
}

// Until is when the gone record's holder stops leading at the latest: its Duration
// (fallback when it names none) after it was seen gone. A final state that is not
// known counts as held, for at least the election's own duration.
func (g Tombstone) Until(fallback time.Duration) time.Time {
	switch {
	case g.Unknown:
		return g.At.Add(max(Duration(g.Lease, fallback), fallback))
	case Holder(g.Lease) == "":
		return g.At
	}
	return g.At.Add(Duration(g.Lease, fallback))
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
// before its event is handled): the first call starts the clock. A new object in
// place of one seen before makes a tombstone of the old one: it is gone, and its
// holder may still lead. A late copy of an object already gone changes nothing.
// An object being deleted is gone from the first sight of it: it makes a
// tombstone, and so does every later change of its record.
func (t *Tracker) Since(key types.NamespacedName, l *coordinationv1.Lease) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clock.Now()
	if g, gone := t.gone[key]; gone && g.Terminating && l.UID != "" && g.Lease.UID != l.UID {
		// Another object in its place: the one being deleted is gone.
		g.Terminating, g.went = false, now
		t.gone[key] = g
	}
	if Deleting(l) {
		if prev, known := t.seen[key]; known && prev.uid == l.UID {
			delete(t.seen, key)
		}
		t.bury(key, l.DeepCopy(), l.UID, now, false, true)
		return now
	}
	if g, gone := t.gone[key]; gone && l.UID != "" && g.Lease.UID == l.UID {
		return now // a reader behind the deletion
	}
	prev, known := t.seen[key]
	if known && prev.uid == l.UID && SameRecord(&coordinationv1.Lease{Spec: prev.spec}, l) {
		return prev.at
	}
	if known && prev.uid != l.UID {
		t.bury(key, &coordinationv1.Lease{ObjectMeta: l.ObjectMeta, Spec: prev.spec}, prev.uid, now, false, false)
	}
	t.seen[key] = seenRecord{spec: *l.Spec.DeepCopy(), uid: l.UID, at: now}
	return now
}

// Delete records that the Lease key was deleted, last being its final record (or,
// with unknown, only the last one this process knew). It tells whether the object
// was the one known; a late event about an object already replaced changes nothing.
// Expired tombstones are pruned here (see Prune).
func (t *Tracker) Delete(key types.NamespacedName, last *coordinationv1.Lease, unknown bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	prev, known := t.seen[key]
	if known && prev.uid != last.UID {
		return false
	}
	delete(t.seen, key)
	now := t.clock.Now()
	t.bury(key, last.DeepCopy(), last.UID, now, unknown, false)
	t.prune(now)
	return known
}

// Prune forgets the tombstones no reader needs any more: a gone record's holder
// leads for its Duration after it went at the latest (an unknown final state is
// kept for tombstoneBound). Delete prunes too; a process calls Prune from time to
// time so that the last burst of deletions is not remembered for ever. Electors
// fold a tombstone's epoch into their own memory when they see it; a group's
// recorded epochs cover electors started later.
func (t *Tracker) Prune() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.prune(t.clock.Now())
}

func (t *Tracker) prune(now time.Time) {
	for k, g := range t.gone {
		if g.Terminating {
			continue
		}
		keep := Duration(g.Lease, tombstoneBound)
		if g.Unknown {
			keep = tombstoneBound
		}
		if !now.Before(latest(g.At, g.went).Add(keep)) {
			delete(t.gone, k)
		}
	}
}

// bury keeps the newest gone object of key. The first sighting of its end counts,
// unless the object was being deleted and its record changed since, or its final
// state is not known: someone may have written it then (a writer that takes a
// terminating Lease for a live one), and may lead on it.
func (t *Tracker) bury(key types.NamespacedName, l *coordinationv1.Lease, uid types.UID, at time.Time, unknown, terminating bool) {
	if g, ok := t.gone[key]; ok && g.Lease.UID == uid && uid != "" && (!g.Terminating || (!unknown && SameRecord(g.Lease, l))) {
		if g.Terminating && !terminating {
			g.Terminating, g.went = false, at
		}
		t.gone[key] = g
		return
	}
	l.UID = uid
	t.gone[key] = Tombstone{Lease: l, At: at, Unknown: unknown, Terminating: terminating}
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
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

// Gone returns the last Lease object of key this process saw go (within
// tombstoneBound): its epoch must not be handed out again, and its holder may lead
// until Until.
func (t *Tracker) Gone(key types.NamespacedName) (Tombstone, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.gone[key]
	return g, ok
}

// Size counts the Leases and tombstones remembered (tests and metrics).
func (t *Tracker) Size() (seen, gone int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.seen), len(t.gone)
}
