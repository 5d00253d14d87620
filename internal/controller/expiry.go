package controller

import (
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/election-manager/election-manager/internal/leaserecord"
)

// expiryWatch wakes groups when a Lease they show expires on this observer's clock,
// and not before. A status only changes with time when a holder (of the group's
// Lease, or a candidate's presence Lease) stops renewing, so a group whose Leases
// are renewed in time must cost no reconcile: a requeue at the expiry computed in
// the last reconcile fired every leaseDuration per group (67 no-op reconciles a
// second at 1,000 groups). Here the timer fires at that expiry, reads the Lease's
// current expiry from the tracker and, when it was renewed meanwhile, only sets
// itself again. One timer per Lease, whatever the number of groups waiting on it.
//
// The way back matters as much: a Lease seen expired that its holder renews again
// (an instance reconnecting, a killed one restarted with the same identity) changes
// no term, so nothing else would wake the groups that showed it gone.
type expiryWatch struct {
	tracker *leaserecord.Tracker
	get     func(types.NamespacedName) *coordinationv1.Lease
	clock   clock.WithDelayedExecution
	// wake enqueues groups; all wakes every group (a candidate came or went).
	wake func(groups []types.NamespacedName, all bool)

	mu     sync.Mutex
	leases map[types.NamespacedName]*expiryEntry
	// lapsed are the Leases seen expiring with a holder still named, and whom to
	// wake when they are renewed.
	lapsed map[types.NamespacedName]*expiryEntry
}

type expiryEntry struct {
	fallback time.Duration // the duration of a record that names none
	at       time.Time     // the expiry the live timer is set for; others are stale
	groups   map[types.NamespacedName]struct{}
	all      bool
}

func newExpiryWatch(t *leaserecord.Tracker, get func(types.NamespacedName) *coordinationv1.Lease, c clock.WithDelayedExecution,
	wake func([]types.NamespacedName, bool)) *expiryWatch {
	return &expiryWatch{tracker: t, get: get, clock: c, wake: wake,
		leases: map[types.NamespacedName]*expiryEntry{}, lapsed: map[types.NamespacedName]*expiryEntry{}}
}

// group wakes group once when lease expires (now, if it has already), unless it is
// woken for that Lease already. A Lease without a holder never expires: nothing to
// wait for.
func (w *expiryWatch) group(lease types.NamespacedName, fallback time.Duration, group types.NamespacedName) {
	w.add(lease, fallback, func(e *expiryEntry) { e.groups[group] = struct{}{} })
}

// everyGroup wakes every group once when lease (a presence Lease) expires.
func (w *expiryWatch) everyGroup(lease types.NamespacedName, fallback time.Duration) {
	w.add(lease, fallback, func(e *expiryEntry) { e.all = true })
}

func (w *expiryWatch) add(lease types.NamespacedName, fallback time.Duration, join func(*expiryEntry)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.leases[lease]
	if e == nil {
		expiry, ok := w.tracker.Expiry(lease, w.get(lease), fallback)
		if !ok {
			return
		}
		e = &expiryEntry{fallback: fallback, groups: map[types.NamespacedName]struct{}{}}
		w.arm(lease, e, expiry)
		w.leases[lease] = e
	}
	join(e)
}

// fire runs at the expiry last computed: it wakes the entry's groups if the Lease
// has expired, is gone or has no holder any more, and otherwise waits for the
// expiry its renewals moved to.
func (w *expiryWatch) fire(lease types.NamespacedName, at time.Time) {
	w.mu.Lock()
	e := w.leases[lease]
	if e == nil || !e.at.Equal(at) {
		w.mu.Unlock()
		return // the Lease is no longer watched, or a sooner timer replaced this one
	}
	expiry, ok := w.tracker.Expiry(lease, w.get(lease), e.fallback)
	if now := w.tracker.Clock().Now(); ok && now.Before(expiry) {
		w.arm(lease, e, expiry)
		w.mu.Unlock()
		return
	}
	delete(w.leases, lease)
	if ok {
		w.lapsed[lease] = e
	}
	w.mu.Unlock()
	w.wakeEntry(e)
}

// arm sets e's timer for expiry. Called with w.mu held.
func (w *expiryWatch) arm(lease types.NamespacedName, e *expiryEntry, expiry time.Time) {
	e.at = expiry
	w.clock.AfterFunc(max(0, expiry.Sub(w.tracker.Clock().Now())), func() { w.fire(lease, expiry) })
}

// seen runs for every version of a Lease the informer hands on (nil: deleted). A
// renewal that moves a watched expiry earlier (a shorter leaseDuration) sets the
// timer sooner; renewals that move it later are found when the timer fires. A
// lapsed Lease that is live again wakes whoever saw it lapse.
func (w *expiryWatch) seen(lease types.NamespacedName, l *coordinationv1.Lease) {
	w.mu.Lock()
	if e := w.leases[lease]; e != nil && l != nil {
		if expiry, ok := w.tracker.Expiry(lease, l, e.fallback); ok && expiry.Before(e.at) {
			w.arm(lease, e, expiry)
		}
	}
	e := w.lapsed[lease]
	if e == nil {
		w.mu.Unlock()
		return
	}
	if l != nil {
		if expiry, ok := w.tracker.Expiry(lease, l, e.fallback); ok && !w.tracker.Clock().Now().Before(expiry) {
			w.mu.Unlock()
			return // still lapsed: a change that is no renewal
		}
	}
	delete(w.lapsed, lease)
	w.mu.Unlock()
	if l != nil {
		w.wakeEntry(e)
	}
}

func (w *expiryWatch) wakeEntry(e *expiryEntry) {
	groups := make([]types.NamespacedName, 0, len(e.groups))
	for g := range e.groups {
		groups = append(groups, g)
	}
	w.wake(groups, e.all)
}

// size is how many Leases are watched (tests).
func (w *expiryWatch) size() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.leases)
}
