package controller

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/leaserecord"
)

// blocked says why a group is not served as declared: the Ready=False reason and
// message. The zero value means it is served.
type blocked struct {
	reason  string
	message string
}

// statusInput is everything the status of one group is computed from.
type statusInput struct {
	group *v1alpha1.LeaderGroup
	lease types.NamespacedName
	// obs is nil when the group's Lease is not observed (the group is blocked).
	obs *observation
	// candidates are the live candidates; nil for External groups.
	candidates []v1alpha1.CandidateStatus
	blocked    blocked
	now        time.Time
	// handoverAttempt names the current attempt to hand over to the preferred
	// holder ("" while it is not a live candidate).
	handoverAttempt string
}

// computeStatus returns the group's next status and the events that tell the change.
// Pure: status is computed here and written once, by the caller, when it changed.
func computeStatus(in statusInput) (v1alpha1.LeaderGroupStatus, []event) {
	prev := in.group.Status
	next := *prev.DeepCopy()
	next.ObservedGeneration = in.group.Generation
	next.Lease = in.lease.String()
	next.Candidates = in.candidates

	var events []event
	if in.obs == nil {
		// Not observed: who holds the Lease is not known, so none is shown (the
		// LeaderElected condition says Unknown, and why).
		next.Holder, next.AcquiredAt = "", nil
	}
	if in.obs != nil {
		next.History, events = historyOf(prev.History, *in.obs, in.group.Spec.HistoryLimit)
		next.Holder, next.AcquiredAt = "", nil
		if cur := openTerm(next.History); cur != nil {
			next.Holder, next.AcquiredAt = cur.Holder, cur.AcquiredAt.DeepCopy()
		}
		if in.obs.lease != nil {
			// While the Lease is missing the last known epoch stands: it only grows.
			// A Lease being deleted is kept until this records its epoch.
			next.Transitions = max(prev.Transitions, in.obs.epoch())
		}
	}

	ready := readyCondition(in)
	if ready.Reason == v1alpha1.ReasonConflict && !meta.IsStatusConditionPresentAndEqual(prev.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse) {
		events = append(events, event{warning: true, reason: EventConflict, message: ready.Message})
	}
	setCondition(&next.Conditions, ready, in)
	setCondition(&next.Conditions, leaderElectedCondition(next, in), in)
	if preferred, ok := preferredHolderCondition(next, in); ok {
		setCondition(&next.Conditions, preferred, in)
	} else {
		meta.RemoveStatusCondition(&next.Conditions, v1alpha1.ConditionPreferredHolder)
	}
	return next, events
}

// historyOf folds the observation into the history. A Lease being deleted shows its
// final record: its term (news if nobody recorded it yet), then its end, as for a
// Lease gone — its holder stopped on seeing the deletion.
func historyOf(prev []v1alpha1.HistoryEntry, obs observation, limit int32) ([]v1alpha1.HistoryEntry, []event) {
	if !leaserecord.Deleting(obs.lease) {
		return nextHistory(prev, obs, limit)
	}
	history, events := nextHistory(prev, obs, limit)
	obs.lease, obs.expiredAt = nil, nil
	history, more := nextHistory(history, obs, limit)
	return history, append(events, more...)
}

// preferredHolderCondition says whether spec.preferredHolder leads, and why not; ok
// is false when no holder is preferred.
func preferredHolderCondition(status v1alpha1.LeaderGroupStatus, in statusInput) (metav1.Condition, bool) {
	preferred := in.group.Spec.PreferredHolder
	if preferred == "" {
		return metav1.Condition{}, false
	}
	c := metav1.Condition{Type: v1alpha1.ConditionPreferredHolder, Status: metav1.ConditionFalse}
	switch {
	case status.Holder == preferred:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, v1alpha1.ReasonHonoured, preferred+" leads, as preferred"
	case isCandidate(in.candidates, preferred) && in.obs != nil && leaserecord.HandoverLapsed(in.obs.lease, preferred, in.handoverAttempt):
		c.Reason = v1alpha1.ReasonHandoverLapsed
		c.Message = fmt.Sprintf("%s is a live candidate but did not take the lease handed over to it: leadership stays where it is until the spec changes or %s joins again", preferred, preferred)
	case isCandidate(in.candidates, preferred):
		c.Reason, c.Message = v1alpha1.ReasonHandingOver, preferred+" is a live candidate: leadership is being handed to it"
	default:
		c.Reason = v1alpha1.ReasonNotACandidate
		c.Message = fmt.Sprintf("%s is not a live candidate: leadership stays where it is until %s becomes one", preferred, preferred)
	}
	return c, true
}

// isCandidate tells whether identity is among the candidates and can lead.
func isCandidate(candidates []v1alpha1.CandidateStatus, identity string) bool {
	for _, c := range candidates {
		if c.Identity == identity && c.Ready {
			return true
		}
	}
	return false
}

func readyCondition(in statusInput) metav1.Condition {
	switch {
	case in.blocked.reason != "":
		return metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
			Reason: in.blocked.reason, Message: in.blocked.message}
	case in.candidates != nil && !anyReady(in.candidates):
		return metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
			Reason: v1alpha1.ReasonNoCandidates, Message: "no candidate can lead"}
	default:
		return metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue,
			Reason: v1alpha1.ReasonReconciled, Message: fmt.Sprintf("electing on Lease %s", in.lease)}
	}
}

func leaderElectedCondition(status v1alpha1.LeaderGroupStatus, in statusInput) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionLeaderElected, Status: metav1.ConditionFalse}
	last := openTerm(status.History)
	switch {
	case in.obs == nil:
		c.Status, c.Reason, c.Message = metav1.ConditionUnknown, in.blocked.reason, "the Lease is not observed: "+in.blocked.message
	case in.obs.lease != nil && len(status.History) > 0 && behind(*in.obs, status.History[0]):
		c.Status, c.Reason = metav1.ConditionUnknown, v1alpha1.ReasonEpochWentBack
		c.Message = fmt.Sprintf("the Lease names %q at epoch %d, but epoch %d was already recorded: it was re-created by a writer that does not keep the epoch growing",
			in.obs.holder(), in.obs.epoch(), status.History[0].Transition)
	case status.Holder != "":
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonElected
		c.Message = fmt.Sprintf("%s leads since %s (epoch %d)", status.Holder, status.AcquiredAt.UTC().Format("2006-01-02T15:04:05Z"), status.Transitions)
	case last == nil && len(status.History) > 0 && status.History[0].EndReason == v1alpha1.EndExpired:
		c.Reason = v1alpha1.ReasonLeaseExpired
		c.Message = fmt.Sprintf("%s stopped renewing the lease and nobody has taken over", status.History[0].Holder)
	default:
		c.Reason, c.Message = v1alpha1.ReasonNoHolder, "nobody holds the lease"
	}
	return c
}

// setCondition sets c, keeping its last transition time when its status is unchanged.
func setCondition(conditions *[]metav1.Condition, c metav1.Condition, in statusInput) {
	c.ObservedGeneration = in.group.Generation
	c.LastTransitionTime = metav1.NewTime(in.now)
	meta.SetStatusCondition(conditions, c)
}

func anyReady(candidates []v1alpha1.CandidateStatus) bool {
	for _, c := range candidates {
		if c.Ready {
			return true
		}
	}
	return false
}
