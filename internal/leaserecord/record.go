// Package leaserecord owns the contract of an election's Lease record: what each
// write (create, acquire, renew, release, handover) sets, the annotations that tell
// how a term began and ended, when a record expires on an observer's clock, and how
// a reader decodes a term's start and end. Every writer (the elector, the Pods
// source, the elector command) and every reader (the controller) goes through it,
// so that they cannot disagree.
//
// The functions are pure: each returns a new object and never changes its input
// (which is often the informer's shared copy).
package leaserecord

import (
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// Annotations written on the Lease, so that an observer can tell how leadership
// changed hands without having seen every intermediate version.
const (
	// AnnotationAcquiredHow says how the current holder acquired the Lease: one of
	// the How values. Removed on release.
	AnnotationAcquiredHow = "coordination.electionmanager.dev/acquired-how"
	// AnnotationReleasedBy names the identity that last released the Lease.
	AnnotationReleasedBy = "coordination.electionmanager.dev/released-by"
	// AnnotationReleasedAt is when (RFC 3339 with nanoseconds, releaser's clock) the
	// Lease was last released.
	AnnotationReleasedAt = "coordination.electionmanager.dev/released-at"
	// AnnotationHandoverTo, on a released Lease, names the identity it was released
	// for: that identity takes it at once, every other one waits for it to expire.
	AnnotationHandoverTo = "coordination.electionmanager.dev/handover-to"
	// AnnotationHandoverAttempt names the attempt a handover was made under (the
	// caller's token: the controller's says which spec and which return of the
	// target). It goes with handover-to, and then with handover-lapsed.
	AnnotationHandoverAttempt = "coordination.electionmanager.dev/handover-attempt"
	// AnnotationHandoverLapsed names the identity a Lease was last handed over to
	// that did not take it within its reservation. It stays on the record, through
	// later terms, releases and expiries, until the next handover: holders do not
	// hand over to it again under the same attempt.
	AnnotationHandoverLapsed = "coordination.electionmanager.dev/handover-lapsed"
)

// Reserved lists the annotations only this package writes.
var Reserved = []string{AnnotationAcquiredHow, AnnotationReleasedBy, AnnotationReleasedAt, AnnotationHandoverTo,
	AnnotationHandoverAttempt, AnnotationHandoverLapsed}

// How is the value of AnnotationAcquiredHow.
type How string

const (
	// Elected: the first holder of a Lease that had never been held (or that this
	// writer created).
	Elected How = "Elected"
	// AfterRelease: the record had no holder because the previous one released it.
	// The released-by/at annotations are kept, so that the acquiring version tells
	// the whole transition.
	AfterRelease How = "AfterRelease"
	// AfterExpiry: the record named a holder (possibly the same identity, after a
	// loss) that had not renewed for its duration on the acquirer's clock.
	AfterExpiry How = "AfterExpiry"
	// Handover: the previous holder released the Lease for this identity.
	Handover How = "Handover"
)

// Holder returns spec.holderIdentity, "" when unset.
func Holder(l *coordinationv1.Lease) string {
	if l == nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// Epoch returns spec.leaseTransitions, the epoch (fencing token), 0 when unset.
func Epoch(l *coordinationv1.Lease) int32 {
	if l == nil || l.Spec.LeaseTransitions == nil {
		return 0
	}
	return *l.Spec.LeaseTransitions
}

// Names tells whether l is the record of the term (identity, epoch). The same
// identity with another epoch is another term.
func Names(l *coordinationv1.Lease, identity string, epoch int32) bool {
	return l != nil && Holder(l) == identity && Epoch(l) == epoch
}

// NeverHeld tells a Lease that exists but has had no holder yet (created empty by
// someone else) from one whose holder released it.
func NeverHeld(l *coordinationv1.Lease) bool {
	return Holder(l) == "" && Epoch(l) == 0 && l.Spec.AcquireTime == nil &&
		l.Annotations[AnnotationReleasedBy] == ""
}

// Duration is how long the record's holder is valid after the record was last seen
// changing. A missing or non-positive leaseDurationSeconds (another tool's record)
// means fallback, the election's own leaseDuration: every reader and writer reads
// it the same way, and none calls such a record "already expired".
func Duration(l *coordinationv1.Lease, fallback time.Duration) time.Duration {
	if l != nil && l.Spec.LeaseDurationSeconds != nil && *l.Spec.LeaseDurationSeconds > 0 {
		return time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second
	}
	return fallback
}

// SameRecord compares the election record (the spec) the way client-go compares its
// raw record: a change of metadata alone (labels, annotations, managedFields) is not
// a sign of life from the holder and must not delay a takeover.
// Field by field, not by reflection: every follower compares every renewal it
// sees, and at thousands of groups reflection was a tenth of a manager's CPU.
func SameRecord(a, b *coordinationv1.Lease) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := &a.Spec, &b.Spec
	return ptr.Equal(x.HolderIdentity, y.HolderIdentity) && ptr.Equal(x.LeaseDurationSeconds, y.LeaseDurationSeconds) &&
		sameTime(x.AcquireTime, y.AcquireTime) && sameTime(x.RenewTime, y.RenewTime) &&
		ptr.Equal(x.LeaseTransitions, y.LeaseTransitions) && ptr.Equal(x.Strategy, y.Strategy) &&
		ptr.Equal(x.PreferredHolder, y.PreferredHolder)
}

// sameTime compares as the API's semantic equality does: the instant, not its
// representation.
func sameTime(a, b *metav1.MicroTime) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Time.Equal(b.Time)
}

// Writer is the party a write is made for: the identity that holds the Lease after
// it, and what else that party sets on every write.
type Writer struct {
	Identity      string
	LeaseDuration time.Duration
	// Labels and Annotations are set on every write (others' are kept).
	Labels, Annotations map[string]string
	// OwnerReferences are set on a Lease this writer creates, never changed later.
	OwnerReferences []metav1.OwnerReference
	// KeepEpoch sets Finalizer on every write, for a group whose status writer
	// removes it once the epoch is recorded.
	KeepEpoch bool
}

func (w Writer) seconds() *int32 {
	s := int32(w.LeaseDuration / time.Second)
	return &s
}

// Create is the Lease w creates, holding it at epoch. epoch must be above every
// epoch the election ever handed out (see the elector's epoch floor).
func Create(key types.NamespacedName, w Writer, now time.Time, epoch int32) *coordinationv1.Lease {
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace}}
	for i := range w.OwnerReferences {
		l.OwnerReferences = append(l.OwnerReferences, *w.OwnerReferences[i].DeepCopy())
	}
	w.stamp(l)
	setAnnotation(l, AnnotationAcquiredHow, string(Elected))
	id, t := w.Identity, metav1.NewMicroTime(now)
	l.Spec = coordinationv1.LeaseSpec{
		HolderIdentity: &id, LeaseDurationSeconds: w.seconds(),
		AcquireTime: &t, RenewTime: &t, LeaseTransitions: &epoch,
	}
	return l
}

// Acquire is cur taken over by w at now: the epoch becomes one more than both cur's
// and above (the highest epoch the election is known to have handed out, which a
// re-created Lease may be below), whoever held it before (the same identity too),
// and the annotations say how. cur is the version read: the write is guarded by
// its resourceVersion. Taking a Lease reserved for someone else records that the
// handover lapsed; the target taking it clears that.
func Acquire(cur *coordinationv1.Lease, w Writer, now time.Time, how How, above int32) *coordinationv1.Lease {
	l := outgoing(cur)
	w.stamp(l)
	setAnnotation(l, AnnotationAcquiredHow, string(how))
	switch to := HandedOverTo(cur); {
	case to != "" && to != w.Identity:
		setAnnotation(l, AnnotationHandoverLapsed, to) // the attempt stays with it
	case how == Handover:
		delete(l.Annotations, AnnotationHandoverLapsed)
		delete(l.Annotations, AnnotationHandoverAttempt)
	}
	delete(l.Annotations, AnnotationHandoverTo)
	if how != AfterRelease && how != Handover {
		// The release annotations describe how the current holder came in; after an
		// expiry they would describe an older transition and mislead.
		delete(l.Annotations, AnnotationReleasedBy)
		delete(l.Annotations, AnnotationReleasedAt)
	}
	id, t, epoch := w.Identity, metav1.NewMicroTime(now), max(Epoch(cur), above)+1
	l.Spec.HolderIdentity, l.Spec.LeaseTransitions = &id, &epoch
	l.Spec.LeaseDurationSeconds = w.seconds()
	l.Spec.AcquireTime, l.Spec.RenewTime = &t, &t
	return l
}

// Renew is own (the version the holder last wrote) renewed at now with w's current
// duration: new timings show up at the next renewal.
func Renew(own *coordinationv1.Lease, w Writer, now time.Time) *coordinationv1.Lease {
	l := outgoing(own)
	w.stamp(l)
	t := metav1.NewMicroTime(now)
	l.Spec.LeaseDurationSeconds, l.Spec.RenewTime = w.seconds(), &t
	return l
}

// Release is own with no holder, released by releaser at now. The epoch is kept
// (the next holder adds one); leaseDurationSeconds becomes 1 as client-go's release
// does, so a tool that only looks at renewTime + duration sees it free at once too.
func Release(own *coordinationv1.Lease, releaser string, now time.Time) *coordinationv1.Lease {
	l := released(own, releaser, now)
	delete(l.Annotations, AnnotationHandoverTo)
	l.Spec.LeaseDurationSeconds = ptr.To[int32](1)
	return l
}

// HandOver is own released by releaser for identity to, which takes it at once,
// under attempt (see AnnotationHandoverAttempt). The record's duration becomes
// reserve (see timing.HandoverReservation): the other candidates leave the Lease to
// to that long, and no longer, so a target that never comes costs one short wait.
// A new handover replaces the memory of the last lapsed one.
func HandOver(own *coordinationv1.Lease, releaser, to, attempt string, now time.Time, reserve time.Duration) *coordinationv1.Lease {
	l := released(own, releaser, now)
	setAnnotation(l, AnnotationHandoverTo, to)
	setAnnotation(l, AnnotationHandoverAttempt, attempt)
	delete(l.Annotations, AnnotationHandoverLapsed)
	l.Spec.LeaseDurationSeconds = ptr.To(max(1, int32(reserve/time.Second)))
	return l
}

func released(own *coordinationv1.Lease, releaser string, now time.Time) *coordinationv1.Lease {
	l := outgoing(own)
	delete(l.Annotations, AnnotationAcquiredHow)
	setAnnotation(l, AnnotationReleasedBy, releaser)
	setAnnotation(l, AnnotationReleasedAt, now.UTC().Format(time.RFC3339Nano))
	t := metav1.NewMicroTime(now)
	l.Spec.HolderIdentity, l.Spec.RenewTime = nil, &t
	return l
}

// stamp sets w's labels, annotations and finalizer, keeping those someone else put
// there.
func (w Writer) stamp(l *coordinationv1.Lease) {
	if w.KeepEpoch {
		keep(l)
	}
	for k, v := range w.Labels {
		if l.Labels == nil {
			l.Labels = make(map[string]string, len(w.Labels))
		}
		l.Labels[k] = v
	}
	for k, v := range w.Annotations {
		setAnnotation(l, k, v)
	}
}

// outgoing prepares a copy for a write. Its managedFields are the reset marker (a
// single empty entry): kube-apiserver then keeps no field ownership on the Lease,
// and on every later update of a Lease without any it skips the tracking, which
// was ~40 % of its CPU per renewal (BenchmarkWriteCost: 1.4–1.7 ms → 0.8–1.0 ms).
// Only Lease writers own a Lease's fields, so the ownership record told no one
// anything; a server-side apply by someone else starts it again, until the next write.
func outgoing(l *coordinationv1.Lease) *coordinationv1.Lease {
	out := l.DeepCopy()
	out.ManagedFields = []metav1.ManagedFieldsEntry{{}}
	return out
}

func setAnnotation(l *coordinationv1.Lease, k, v string) {
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[k] = v
}
