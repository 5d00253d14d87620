package controller

import (
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/leaserecord"
)

// observation is what the status writer sees of a group's Lease at one moment.
type observation struct {
	// lease is nil when the Lease does not exist.
	lease *coordinationv1.Lease
	// expiredAt is set when the named holder has not renewed for leaseDuration on
	// this observer's clock: the moment that happened.
	expiredAt *time.Time
	now       time.Time
}

func (o observation) holder() string { return leaserecord.Holder(o.lease) }
func (o observation) epoch() int32   { return leaserecord.Epoch(o.lease) }

// event is a Kubernetes Event to record on the group.
type event struct {
	warning bool
	reason  string
	message string
}

// Event reasons, recorded on the LeaderGroup.
const (
	EventLeaderElected = "LeaderElected"
	EventLeaderLost    = "LeaderLost"
	EventLeaseExpired  = "LeaseExpired"
	EventConflict      = "Conflict"
	EventSplitBrain    = "SplitBrain"
)

// nextHistory folds one observation into the history (newest first) and returns the
// events the change implies. It is pure: the same inputs give the same history on
// every manager instance, and a new status writer carries on where the last one
// stopped. A term is identified by (holder, transition). History never goes back:
// an observation below the newest entry's epoch — or at its epoch with another
// holder — is an old view (a new status writer's informer catching up) or a writer
// that went back in epochs (a foreign tool re-creating the Lease), and changes
// nothing until the Lease's epoch passes the recorded one.
func nextHistory(prev []v1alpha1.HistoryEntry, obs observation, limit int32) ([]v1alpha1.HistoryEntry, []event) {
	if obs.lease != nil && len(prev) > 0 && behind(obs, prev[0]) {
		return prev, nil
	}
	history := append([]v1alpha1.HistoryEntry(nil), prev...)
	for i := range history {
		history[i] = *history[i].DeepCopy()
	}
	var events []event
	holder, epoch := obs.holder(), obs.epoch()
	cur := openTerm(history)

	if holder != "" && (cur == nil || cur.Holder != holder || cur.Transition != epoch) {
		switch {
		case len(history) > 0 && history[0].Holder == holder && history[0].Transition == epoch:
			// A term that ended stays ended, and is told once: a release or handover
			// cannot be undone at the same epoch, and a record seen again (a new status
			// writer's first look, a lagging view) is no sign of life. Only an expired
			// holder whose record shows a renewal past the recorded end goes on.
			if renewedAfter(obs, history[0]) {
				history[0].EndedAt, history[0].EndReason = nil, ""
			}
		default:
			entry := newTerm(history, obs)
			var prevEnd *time.Time // when the previous term ended, if known
			if cur != nil {
				end := previousEnd(cur, obs, entry)
				events = append(events, endTerm(cur, end))
				if end.exact {
					prevEnd = &end.at
				}
			} else if len(history) > 0 && entry.MissedTransitions == 0 {
				prevEnd = &history[0].EndedAt.Time
			}
			if prevEnd != nil && !entry.AcquiredAt.Time.Before(*prevEnd) {
				entry.LeaderlessFor = &metav1.Duration{Duration: entry.AcquiredAt.Sub(*prevEnd)}
			}
			history = append([]v1alpha1.HistoryEntry{entry}, history...)
			events = append(events, event{reason: EventLeaderElected,
				message: fmt.Sprintf("%s leads (epoch %d, %s)", entry.Holder, entry.Transition, entry.StartReason)})
		}
		cur = openTerm(history)
	}

	if cur != nil {
		switch {
		case holder == "":
			events = append(events, endTerm(cur, releasedEnd(cur, obs)))
		case obs.expiredAt != nil:
			events = append(events, endTerm(cur, termEnd{at: *obs.expiredAt, reason: v1alpha1.EndExpired}))
		}
	}

	if int32(len(history)) > limit {
		history = history[:limit]
	}
	return history, events
}

// renewedAfter tells whether obs shows the expired term e renewed after all: a
// renewal whose lease runs past the end recorded for it.
func renewedAfter(obs observation, e v1alpha1.HistoryEntry) bool {
	rt, d := obs.lease.Spec.RenewTime, leaserecord.Duration(obs.lease, 0)
	return e.EndReason == v1alpha1.EndExpired && obs.expiredAt == nil && rt != nil && d > 0 &&
		rt.Add(d).After(e.EndedAt.Time)
}

// behind tells whether obs shows an older state than the newest entry.
func behind(obs observation, newest v1alpha1.HistoryEntry) bool {
	holder := obs.holder()
	return obs.epoch() < newest.Transition || (obs.epoch() == newest.Transition && holder != "" && holder != newest.Holder)
}

// openTerm is the current term: the newest entry, when it has not ended.
func openTerm(history []v1alpha1.HistoryEntry) *v1alpha1.HistoryEntry {
	if len(history) > 0 && history[0].EndedAt == nil {
		return &history[0]
	}
	return nil
}

type termEnd struct {
	at     time.Time
	reason v1alpha1.EndReason
	// exact: at is when it really ended, not an estimate.
	exact bool
}

// endTerm closes entry and returns the event that tells it.
func endTerm(entry *v1alpha1.HistoryEntry, end termEnd) event {
	at := metav1.NewTime(end.at)
	if at.Before(&entry.AcquiredAt) {
		at = entry.AcquiredAt
	}
	entry.EndedAt, entry.EndReason = &at, end.reason
	switch end.reason {
	case v1alpha1.EndExpired:
		return event{warning: true, reason: EventLeaseExpired,
			message: fmt.Sprintf("%s stopped renewing the lease (epoch %d)", entry.Holder, entry.Transition)}
	case v1alpha1.EndReleased:
		return event{reason: EventLeaderLost, message: fmt.Sprintf("%s released the lease (epoch %d)", entry.Holder, entry.Transition)}
	default:
		return event{reason: EventLeaderLost, message: fmt.Sprintf("%s no longer leads (epoch %d, %s)", entry.Holder, entry.Transition, end.reason)}
	}
}

// releasedEnd is how a term ended when the Lease shows no holder, as the record
// tells it (a deleted Lease tells nothing); when the releaser wrote no time, it
// ended when we saw it.
func releasedEnd(entry *v1alpha1.HistoryEntry, obs observation) termEnd {
	end := leaserecord.EndOf(entry.Holder, obs.lease)
	if end.At.IsZero() {
		return termEnd{at: obs.now, reason: end.Reason}
	}
	return termEnd{at: end.At, reason: end.Reason, exact: true}
}

// previousEnd is how the previous term ended, told by the record of the next one,
// when the observer did not see the end itself.
func previousEnd(prev *v1alpha1.HistoryEntry, obs observation, next v1alpha1.HistoryEntry) termEnd {
	if next.MissedTransitions > 0 {
		return termEnd{at: next.AcquiredAt.Time, reason: v1alpha1.EndUnknown} // others held it in between
	}
	end := leaserecord.EndOf(prev.Holder, obs.lease)
	if end.At.IsZero() {
		if end.Reason == v1alpha1.EndReleased || end.Reason == v1alpha1.EndHandover {
			return termEnd{at: obs.now, reason: end.Reason}
		}
		return termEnd{at: next.AcquiredAt.Time, reason: end.Reason}
	}
	return termEnd{at: end.At, reason: end.Reason, exact: true}
}

// newTerm is the entry for the term obs shows, which history does not hold yet.
func newTerm(history []v1alpha1.HistoryEntry, obs observation) v1alpha1.HistoryEntry {
	entry := v1alpha1.HistoryEntry{
		Holder:      obs.holder(),
		Transition:  obs.epoch(),
		AcquiredAt:  metav1.NewTime(obs.now),
		StartReason: v1alpha1.StartUnknown,
	}
	if t := obs.lease.Spec.AcquireTime; t != nil {
		entry.AcquiredAt = metav1.NewTime(t.Time)
	}
	var prev *v1alpha1.HistoryEntry
	if len(history) > 0 {
		prev = &history[0]
		if missed := entry.Transition - prev.Transition - 1; missed > 0 {
			entry.MissedTransitions = missed
		}
	}

	entry.StartReason = leaserecord.Start(obs.lease)
	switch {
	case entry.StartReason != v1alpha1.StartUnknown:
	case prev == nil:
		// A writer that records nothing (client-go, say): a fresh Lease's first
		// holder was elected; a Lease seen first mid-life started we cannot say how.
		if entry.Transition == 0 {
			entry.StartReason = v1alpha1.StartElected
		}
	case entry.MissedTransitions > 0:
		// Someone held it in between: how this term began is unknown.
	case prev.EndReason == v1alpha1.EndReleased:
		entry.StartReason = v1alpha1.StartAfterRelease
	case prev.EndReason == v1alpha1.EndExpired:
		entry.StartReason = v1alpha1.StartAfterExpiry
	case prev.EndReason == v1alpha1.EndHandover:
		entry.StartReason = v1alpha1.StartHandover
	}
	return entry
}
