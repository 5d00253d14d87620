package election

import (
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"

	"github.com/election-manager/election-manager/internal/leaserecord"
)

// followerStep is what a follower should do with the informer's view of its Lease.
type followerStep struct {
	// create: the Lease does not exist. acquire: take cur over with how. Neither:
	// wait, until retryAt if set (the holder's lease expires then).
	create, acquire bool
	how             leaserecord.How
	retryAt         time.Time
}

// followerView is what a follower knows when it decides.
type followerView struct {
	// cur is the informer's view, nil when the Lease does not exist; since is when
	// this process first saw cur as it is.
	cur   *coordinationv1.Lease
	since time.Time
	// gone is set when this process saw the Lease object before cur (or before it
	// went missing) deleted or replaced, and still remembers it.
	gone *leaserecord.Tombstone
	// behind: cur's epoch is below one the election already handed out, so cur is a
	// Lease re-created by someone else (or a view older than our own writes).
	behind bool
	// heldBefore: the election has had a holder before (this process saw an epoch,
	// or the group recorded one), so an absent Lease was deleted, maybe under a
	// leader this process never saw. missingSince is when this elector first found
	// it absent.
	heldBefore   bool
	missingSince time.Time
	// deleting: the Lease is being deleted, kept until its epoch is recorded.
	// Nothing can be written until it goes.
	deleting bool
	// headStart is how long cur, once free to take, is left to the successor
	// another candidate's config names (0: this one is it, or none is named).
	headStart time.Duration
}

// decideFollower applies client-go's acquisition rule to v.
//
// An absent Lease is created at once only when the election never had a holder.
// After a deletion, the deleted record's holder may lead until its next renewal
// fails, so the Lease is created only once that record would have expired: counted
// from the deletion when this process saw it, else from when this elector first
// found the Lease missing (the deletion was earlier still).
//
// A free Lease (released, or expired on this process's clock) is taken at once,
// or after v.headStart when another candidate is to take it first.
func decideFollower(now time.Time, self string, v followerView, fallback time.Duration) followerStep {
	if v.deleting {
		return followerStep{}
	}
	if v.cur == nil {
		wait := time.Time{}
		switch {
		case v.gone != nil:
			wait = v.gone.Until(fallback)
		case v.heldBefore:
			wait = v.missingSince.Add(fallback)
		}
		if now.Before(wait) {
			return followerStep{retryAt: wait}
		}
		return followerStep{create: true, how: leaserecord.Elected}
	}
	cur := v.cur
	if v.gone != nil && now.Before(v.gone.Until(fallback)) {
		// A new object in place of one whose holder may still lead: wait it out,
		// whatever the new record says.
		return followerStep{retryAt: v.gone.Until(fallback)}
	}
	if v.behind && leaserecord.Holder(cur) == "" {
		// An empty record below the known epochs: the Lease was re-created, maybe
		// under a leader this process never saw go. Wait a leaseDuration from
		// first seeing it, as for a missing Lease.
		if wait := v.since.Add(fallback); now.Before(wait) {
			return followerStep{retryAt: wait}
		}
	}
	exp := v.since.Add(leaserecord.Duration(cur, fallback))
	if leaserecord.Holder(cur) == "" {
		switch to := leaserecord.HandedOverTo(cur); {
		case to == self:
			return followerStep{acquire: true, how: leaserecord.Handover}
		case to != "" && now.Before(exp):
			// Released for someone else: theirs until it would expire.
			return followerStep{retryAt: exp}
		}
		if wait := v.since.Add(v.headStart); now.Before(wait) {
			return followerStep{retryAt: wait}
		}
		return followerStep{acquire: true, how: leaserecord.TakeoverHow(cur)}
	}
	if wait := exp.Add(v.headStart); now.Before(wait) {
		return followerStep{retryAt: wait}
	}
	return followerStep{acquire: true, how: leaserecord.AfterExpiry}
}
