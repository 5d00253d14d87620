package leaserecord

import (
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"

	"github.com/election-manager/election-manager/api/v1alpha1"
)

// TakeoverHow is how a candidate that takes l over now acquires it: after expiry
// when l still names a holder, as the first holder of a Lease never held, else
// after a release.
func TakeoverHow(l *coordinationv1.Lease) How {
	switch {
	case Holder(l) != "":
		return AfterExpiry
	case NeverHeld(l):
		return Elected
	default:
		return AfterRelease
	}
}

// Previous is the identity a takeover of l now follows: its holder, or, when it
// has none, the identity that released it last ("" when the record does not say).
func Previous(l *coordinationv1.Lease) string {
	if h := Holder(l); h != "" || l == nil {
		return h
	}
	return l.Annotations[AnnotationReleasedBy]
}

// HandedOverTo is the identity a released l is reserved for, "" when none.
func HandedOverTo(l *coordinationv1.Lease) string {
	if l == nil || Holder(l) != "" {
		return ""
	}
	return l.Annotations[AnnotationHandoverTo]
}

// HandoverLapsed tells whether l records that a handover to identity under attempt
// lapsed: the target did not take the Lease within its reservation, and no
// handover has been made since. Holders do not hand over to it again under the
// same attempt.
func HandoverLapsed(l *coordinationv1.Lease, identity, attempt string) bool {
	return l != nil && identity != "" && l.Annotations[AnnotationHandoverLapsed] == identity &&
		l.Annotations[AnnotationHandoverAttempt] == attempt
}

// Start is how the term l shows began, as its writer recorded it; StartUnknown
// when the writer recorded nothing (client-go, say).
func Start(l *coordinationv1.Lease) v1alpha1.StartReason {
	switch How(l.Annotations[AnnotationAcquiredHow]) {
	case Elected:
		return v1alpha1.StartElected
	case AfterRelease:
		return v1alpha1.StartAfterRelease
	case AfterExpiry:
		return v1alpha1.StartAfterExpiry
	case Handover:
		return v1alpha1.StartHandover
	}
	return v1alpha1.StartUnknown
}

// End is how a term ended, as a later record tells it.
type End struct {
	Reason v1alpha1.EndReason
	// At is when it ended, by the releaser's own record; zero when the record does
	// not say (the reader then uses what it knows: when it saw the end, or when the
	// next term began).
	At time.Time
}

// EndOf is how holder's term ended, told by next: the first record seen without
// that term, nil when the Lease is gone. It tells only what next records: a release
// (by holder, or for holder by the Pods source), a handover, a takeover after
// expiry; anything else is Unknown.
func EndOf(holder string, next *coordinationv1.Lease) End {
	if next == nil {
		return End{Reason: v1alpha1.EndUnknown}
	}
	var released time.Time
	if next.Annotations[AnnotationReleasedBy] == holder {
		if t, err := time.Parse(time.RFC3339Nano, next.Annotations[AnnotationReleasedAt]); err == nil {
			released = t
		}
	}
	if Holder(next) == "" {
		if HandedOverTo(next) != "" {
			return End{Reason: v1alpha1.EndHandover, At: released}
		}
		return End{Reason: v1alpha1.EndReleased, At: released}
	}
	switch Start(next) {
	case v1alpha1.StartAfterRelease:
		return End{Reason: v1alpha1.EndReleased, At: released}
	case v1alpha1.StartHandover:
		return End{Reason: v1alpha1.EndHandover, At: released}
	case v1alpha1.StartAfterExpiry:
		return End{Reason: v1alpha1.EndExpired}
	}
	return End{Reason: v1alpha1.EndUnknown}
}
