package election

import (
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Annotations an elector writes on its Lease, so that an observer (the LeaderGroup
// controller) can tell how leadership changed hands without having seen every
// intermediate version.
const (
	// AnnotationAcquiredHow says how the current holder acquired the Lease: one of
	// the AcquiredHow values. Removed on release.
	AnnotationAcquiredHow = "coordination.electionmanager.dev/acquired-how"
	// AnnotationReleasedBy names the identity that last released the Lease.
	AnnotationReleasedBy = "coordination.electionmanager.dev/released-by"
	// AnnotationReleasedAt is when (RFC 3339 with nanoseconds, releaser's clock) the
	// Lease was last released.
	AnnotationReleasedAt = "coordination.electionmanager.dev/released-at"
	// AnnotationHandoverTo, on a released Lease, names the identity it was released
	// for: that identity takes it at once, every other one waits for it to expire.
	AnnotationHandoverTo = "coordination.electionmanager.dev/handover-to"
)

// AcquiredHow is the value of AnnotationAcquiredHow.
type AcquiredHow string

const (
	// AcquiredElected: the elector created the Lease, or was the first holder of a
	// Lease that had never been held.
	AcquiredElected AcquiredHow = "Elected"
	// AcquiredAfterRelease: the record had no holder because the previous one
	// released it. The released-by/at annotations are kept, so that the acquiring
	// version tells the whole transition.
	AcquiredAfterRelease AcquiredHow = "AfterRelease"
	// AcquiredAfterExpiry: the record named a holder (possibly this identity, after
	// a loss) that had not renewed for leaseDurationSeconds on the acquirer's clock.
	AcquiredAfterExpiry AcquiredHow = "AfterExpiry"
	// AcquiredHandover: the previous holder released the Lease for this identity.
	AcquiredHandover AcquiredHow = "Handover"
)

// HolderOf returns spec.holderIdentity, "" when unset.
func HolderOf(l *coordinationv1.Lease) string {
	if l == nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// EpochOf returns spec.leaseTransitions, the epoch (fencing token), 0 when unset.
func EpochOf(l *coordinationv1.Lease) int32 {
	if l == nil || l.Spec.LeaseTransitions == nil {
		return 0
	}
	return *l.Spec.LeaseTransitions
}

// neverHeld tells a Lease that exists but has had no holder yet (created empty by
// someone else) from one whose holder released it.
func neverHeld(l *coordinationv1.Lease) bool {
	return HolderOf(l) == "" && EpochOf(l) == 0 && l.Spec.AcquireTime == nil &&
		l.Annotations[AnnotationReleasedBy] == ""
}

// acquisitionKind is how a follower that takes l now would have acquired it.
func acquisitionKind(l *coordinationv1.Lease) AcquiredHow {
	switch {
	case HolderOf(l) != "":
		return AcquiredAfterExpiry
	case neverHeld(l):
		return AcquiredElected
	default:
		return AcquiredAfterRelease
	}
}

// sameRecord compares the election record (the spec) the way client-go compares its
// raw record: a change of metadata alone (labels, annotations, managedFields) is not
// a sign of life from the holder and must not delay a takeover.
func sameRecord(a, b *coordinationv1.Lease) bool {
	if a == nil || b == nil {
		return a == b
	}
	return apiequality.Semantic.DeepEqual(a.Spec, b.Spec)
}

// expiry is the local instant at which a record first observed at observedAt may be
// taken over. A missing or non-positive leaseDurationSeconds (written by some other
// tool) falls back to this elector's own duration rather than to "already expired".
func expiry(l *coordinationv1.Lease, observedAt time.Time, fallback time.Duration) time.Time {
	d := fallback
	if l.Spec.LeaseDurationSeconds != nil && *l.Spec.LeaseDurationSeconds > 0 {
		d = time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	return observedAt.Add(d)
}

// followerStep is what a follower should do with the informer's view of its Lease.
type followerStep struct {
	// create: the Lease does not exist. acquire: take cur over with how. Neither:
	// wait, until retryAt if set (the holder's lease expires then).
	create, acquire bool
	how             AcquiredHow
	retryAt         time.Time
}

// tombstone is a Lease the informer saw deleted: at is when (local clock), lease its
// last known state.
type tombstone struct {
	lease *coordinationv1.Lease
	at    time.Time
}

// decideFollower applies client-go's acquisition rule to the informer's view cur
// (nil when the Lease does not exist), first observed unchanged at observedAt.
//
// gone is set when cur is nil because the Lease was deleted: if it had a holder,
// that holder may lead until its next renewal fails, so the Lease is created again
// only once the deleted record would have expired, counted from the deletion. (A
// Lease never seen is created at once.) The informer keeps this, not the elector: an
// elector reads the cache when woken and may miss a short-lived state.
func decideFollower(now time.Time, self string, cur *coordinationv1.Lease, gone *tombstone, observedAt time.Time, fallback time.Duration) followerStep {
	if cur == nil {
		if gone != nil && HolderOf(gone.lease) != "" {
			if exp := expiry(gone.lease, gone.at, fallback); now.Before(exp) {
				return followerStep{retryAt: exp}
			}
		}
		return followerStep{create: true, how: AcquiredElected}
	}
	if HolderOf(cur) == "" {
		switch to := cur.Annotations[AnnotationHandoverTo]; {
		case to == self:
			return followerStep{acquire: true, how: AcquiredHandover}
		case to != "":
			// Released for someone else: theirs until it would expire.
			if exp := expiry(cur, observedAt, fallback); now.Before(exp) {
				return followerStep{retryAt: exp}
			}
		}
		return followerStep{acquire: true, how: acquisitionKind(cur)}
	}
	exp := expiry(cur, observedAt, fallback)
	if !now.Before(exp) {
		return followerStep{acquire: true, how: AcquiredAfterExpiry}
	}
	return followerStep{retryAt: exp}
}

// outgoing prepares a copy of a Lease for a write: managedFields are dropped, which
// the API server reads as "unchanged", so a renewal does not resend them.
func outgoing(l *coordinationv1.Lease) *coordinationv1.Lease {
	out := l.DeepCopy()
	out.ManagedFields = nil
	return out
}

// mergeLabels sets want on l, keeping labels someone else put there.
func mergeLabels(l *coordinationv1.Lease, want map[string]string) {
	if len(want) == 0 {
		return
	}
	if l.Labels == nil {
		l.Labels = make(map[string]string, len(want))
	}
	for k, v := range want {
		l.Labels[k] = v
	}
}

// mergeAnnotations sets want on l, keeping annotations someone else put there.
func mergeAnnotations(l *coordinationv1.Lease, want map[string]string) {
	for k, v := range want {
		setAnnotation(l, k, v)
	}
}

func setAnnotation(l *coordinationv1.Lease, k, v string) {
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[k] = v
}

// newLease is the Lease this elector creates when none exists, holding epoch.
func newLease(c *Config, now time.Time, epoch int32) *coordinationv1.Lease {
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{
		Name:            c.Lease.Name,
		Namespace:       c.Lease.Namespace,
		OwnerReferences: c.clone().OwnerReferences,
	}}
	mergeLabels(l, c.Labels)
	mergeAnnotations(l, c.Annotations)
	setAnnotation(l, AnnotationAcquiredHow, string(AcquiredElected))
	id, secs, t := c.Identity, c.leaseDurationSeconds(), metav1.NewMicroTime(now)
	l.Spec = coordinationv1.LeaseSpec{
		HolderIdentity:       &id,
		LeaseDurationSeconds: &secs,
		AcquireTime:          &t,
		RenewTime:            &t,
		LeaseTransitions:     &epoch,
	}
	return l
}

// acquiredLease is cur taken over by this elector at now: the epoch grows by one,
// whoever held it before (this identity too), and the annotations say how.
func acquiredLease(cur *coordinationv1.Lease, c *Config, now time.Time, how AcquiredHow) *coordinationv1.Lease {
	l := outgoing(cur)
	mergeLabels(l, c.Labels)
	mergeAnnotations(l, c.Annotations)
	setAnnotation(l, AnnotationAcquiredHow, string(how))
	delete(l.Annotations, AnnotationHandoverTo)
	if how != AcquiredAfterRelease && how != AcquiredHandover {
		// The release annotations describe how the current holder came in; after an
		// expiry they would describe an older transition and mislead.
		delete(l.Annotations, AnnotationReleasedBy)
		delete(l.Annotations, AnnotationReleasedAt)
	}
	id, secs, t, epoch := c.Identity, c.leaseDurationSeconds(), metav1.NewMicroTime(now), EpochOf(cur)+1
	l.Spec.HolderIdentity = &id
	l.Spec.LeaseDurationSeconds = &secs
	l.Spec.AcquireTime = &t
	l.Spec.RenewTime = &t
	l.Spec.LeaseTransitions = &epoch
	return l
}

// renewedLease is own (the object our last write returned) renewed at now, with the
// current timings: a restart with new timings shows up at the next renewal.
func renewedLease(own *coordinationv1.Lease, c *Config, now time.Time) *coordinationv1.Lease {
	l := outgoing(own)
	mergeLabels(l, c.Labels)
	mergeAnnotations(l, c.Annotations)
	secs, t := c.leaseDurationSeconds(), metav1.NewMicroTime(now)
	l.Spec.LeaseDurationSeconds = &secs
	l.Spec.RenewTime = &t
	return l
}

// releasedLease is own with no holder. The epoch is kept (the next holder adds one);
// leaseDurationSeconds becomes 1 as client-go's release does, so a tool that only
// looks at renewTime + duration sees it free at once too. A handover (to non-empty)
// keeps the full duration instead: it reserves the Lease for to, which the other
// candidates respect until it would expire.
func releasedLease(own *coordinationv1.Lease, identity, to string, now time.Time) *coordinationv1.Lease {
	l := outgoing(own)
	delete(l.Annotations, AnnotationAcquiredHow)
	setAnnotation(l, AnnotationReleasedBy, identity)
	setAnnotation(l, AnnotationReleasedAt, now.UTC().Format(time.RFC3339Nano))
	t := metav1.NewMicroTime(now)
	l.Spec.HolderIdentity = nil
	if to == "" {
		delete(l.Annotations, AnnotationHandoverTo)
		one := int32(1)
		l.Spec.LeaseDurationSeconds = &one
	} else {
		setAnnotation(l, AnnotationHandoverTo, to)
	}
	l.Spec.RenewTime = &t
	return l
}

// namesUs tells whether l is still the record of our own term: our identity and the
// epoch we acquired. The same identity with another epoch is someone else's term.
func namesUs(l *coordinationv1.Lease, identity string, epoch int32) bool {
	return l != nil && HolderOf(l) == identity && EpochOf(l) == epoch
}
