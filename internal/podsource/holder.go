package podsource

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/election-manager/election-manager/internal/leaserecord"
)

// The Pods source reads the selected pods and relabels the leader.
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;patch

// Holder holds Pods groups' Leases on behalf of their chosen pods. Only the status
// writer uses it; every write is guarded by the resourceVersion it read.
type Holder struct {
	Client client.Client
	// APIReader reads past Client's cache: the pods that carry a group's label are
	// found fresh before the Lease moves, so that none is left labelled.
	APIReader client.Reader
	Leases    coordinationv1client.LeasesGetter
	Clock     clock.PassiveClock
	// Writing tells whether this instance still writes status (holds the manager's
	// lock, on its own clock); checked right before every write, so that a writer
	// that lost the lock mid-Sync writes nothing more. nil: always.
	Writing func() bool
}

// Group is what Sync needs to know of a Pods group.
type Group struct {
	Lease types.NamespacedName
	// Pods are the pods the group's podSelector picks.
	Pods []corev1.Pod
	// Current is the Lease as observed; nil when it does not exist.
	Current *coordinationv1.Lease
	// Expired: Current's record has not changed for its duration on this observer's
	// clock (the Lease tracker's).
	Expired bool
	// RenewedLongAgo: Current's renewTime is older than its duration. Trusted only
	// for a holder of ours, whose renewTime a manager instance wrote: a status writer
	// that has just taken over has not watched long enough to know that none renewed
	// while none was writing. Another party's renewTime is on its own clock.
	RenewedLongAgo bool
	// Suspended: no pod may lead; the Lease is released and the label removed.
	Suspended bool
	// Preferred is the pod to hand leadership to while it can lead.
	Preferred                  string
	LeaseDuration, RetryPeriod time.Duration
	Owner                      metav1.OwnerReference
	// EpochFloor returns the highest epoch the group recorded, read fresh from the
	// API server when asked (see election.Config.EpochFloor): a Lease created or
	// acquired starts above it. nil: 0.
	EpochFloor func(fresh bool) (int32, error)
	// Labels are set on the Lease at every write.
	Labels map[string]string
	// MoveToNewestRevision moves a leader of an older revision to the workload's newest
	// as soon as a pod of it can lead (see choose).
	MoveToNewestRevision bool
}

// Sync makes the Lease and the leader label name the pod that should lead, in the
// order that never shows two leaders that can take traffic: take the label off every
// other pod that carries it and can take new traffic (found by the label, fresh, not
// through the selector), move the Lease, label the pod the written Lease names, at
// its epoch, and only then unlabel the pods that could not take new traffic. It returns the Lease as
// written (Current when unchanged) and when to renew next.
//
// A holder that is not ours keeps the Lease until it expires on this observer's
// clock: until then Sync writes nothing and labels no pod.
func (h *Holder) Sync(ctx context.Context, g Group) (*coordinationv1.Lease, time.Duration, error) {
	if leaserecord.Deleting(g.Current) {
		// Kept until the status records its epoch; created again once it is gone.
		return g.Current, 0, nil
	}
	holder := leaserecord.Holder(g.Current)
	foreign := holder != "" && !g.ours(holder)
	g.Expired = g.Expired || (!foreign && g.RenewedLongAgo)
	if g.Expired {
		holder = ""
	}
	want := choose(g.candidates(), holder, g.Preferred, g.MoveToNewestRevision)
	if g.Suspended || (foreign && !g.Expired) {
		want = ""
	}
	labelled, err := h.labelledFor(ctx, g, want, holder)
	if err != nil {
		return nil, 0, err
	}
	// A labelled pod loses the label before anyone else gets it, except a terminating
	// one: it can never take new requests again (a Service sends it some only while it
	// has no Ready endpoint), so it keeps the label until the new leader has it and
	// goes on serving while it drains. A pod that is merely not Ready may turn Ready
	// again at any time, even while no status writer runs (one died mid-switch).
	var draining []*corev1.Pod
	for i := range labelled {
		p := &labelled[i]
		switch {
		case p.Name == want:
		case want != "" && p.DeletionTimestamp != nil:
			draining = append(draining, p)
		default:
			if err := h.unlabel(ctx, p); err != nil {
				return nil, 0, err
			}
		}
	}
	if foreign && !g.Expired {
		return g.Current, 0, nil
	}
	if !h.writing() {
		return nil, 0, errNotWriting
	}
	now := h.Clock.Now()
	lease, err := h.writeLease(ctx, g, want, holder, now)
	if err != nil {
		return nil, 0, err
	}
	if want != "" {
		if err := h.label(ctx, g, lease, pick(labelled, g.Pods, want)); err != nil {
			return lease, 0, err
		}
	}
	for _, p := range draining {
		if err := h.unlabel(ctx, p); err != nil {
			return lease, 0, err
		}
	}
	if want == "" || lease == nil || lease.Spec.RenewTime == nil {
		return lease, 0, nil
	}
	return lease, max(lease.Spec.RenewTime.Add(g.RetryPeriod).Sub(now), time.Millisecond), nil
}

// Unlabel takes group's leader label off every pod in namespace that carries it:
// for a group that no longer exists, is blocked, or is not a Pods group.
func (h *Holder) Unlabel(ctx context.Context, namespace, group string) error {
	pods, err := labelled(ctx, h.APIReader, namespace, group)
	if err != nil {
		return err
	}
	for i := range pods {
		if err := h.unlabel(ctx, &pods[i]); err != nil {
			return err
		}
	}
	return nil
}

// errNotWriting stops a Sync whose instance lost the manager's lock on the way.
var errNotWriting = errors.New("no longer the status writer")

func (h *Holder) writing() bool { return h.Writing == nil || h.Writing() }

// label is the leader label's value for this group: its name, so that a Service
// selects the leader of one group, and labels are found by group, not by selector.
func (g *Group) label() string { return g.Owner.Name }

// candidates are the group's pods but those another group's leader label marks: a
// pod carries one value, so it leads one group at a time.
func (g *Group) candidates() []corev1.Pod {
	out := make([]corev1.Pod, 0, len(g.Pods))
	for i := range g.Pods {
		if free(&g.Pods[i], g.label()) {
			out = append(out, g.Pods[i])
		}
	}
	return out
}

// ours tells whether holder holds the Lease for this group: one of its pods, or any
// holder of a Lease the group owns (a pod deleted or relabelled was ours). Anyone
// else is another party's: an elector, another controller.
func (g *Group) ours(holder string) bool {
	for i := range g.Pods {
		if g.Pods[i].Name == holder {
			return true
		}
	}
	for _, o := range g.Current.GetOwnerReferences() {
		if o.UID == g.Owner.UID {
			return true
		}
	}
	return false
}

// writeLease creates, moves, renews or releases the Lease for want, through the
// Lease record's writes: the manager writes on the pods' behalf exactly what an
// elector would.
func (h *Holder) writeLease(ctx context.Context, g Group, want, holder string, now time.Time) (*coordinationv1.Lease, error) {
	leases := h.Leases.Leases(g.Lease.Namespace)
	w := leaserecord.Writer{Identity: want, LeaseDuration: g.LeaseDuration, Labels: g.Labels,
		OwnerReferences: []metav1.OwnerReference{g.Owner}, KeepEpoch: true}
	cur := g.Current
	var floor int32
	if handsOut := want != "" && (cur == nil || want != holder); handsOut && g.EpochFloor != nil {
		// Fresh for an object no keeping writer wrote: a cache may not show yet the
		// epoch a deleted Lease was let go with.
		f, err := g.EpochFloor(cur == nil || !leaserecord.Kept(cur))
		if err != nil {
			return nil, err
		}
		floor = f
	}
	var next *coordinationv1.Lease
	switch {
	case cur == nil && want == "":
		return nil, nil
	case cur == nil:
		next = leaserecord.Create(g.Lease, w, now, floor+1)
		created, err := leases.Create(ctx, next, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("creating Lease %s: %w", g.Lease, err)
		}
		return created, nil
	case want == "" && leaserecord.Holder(cur) == "":
		return cur, nil // already released
	case want == "":
		next = leaserecord.Release(cur, leaserecord.Holder(cur), now)
	case want == holder:
		if cur.Spec.RenewTime != nil && now.Before(cur.Spec.RenewTime.Add(g.RetryPeriod)) &&
			leaserecord.Duration(cur, 0) == g.LeaseDuration {
			return cur, nil // not due
		}
		next = leaserecord.Renew(cur, w, now)
	case g.Expired || leaserecord.Holder(cur) == "":
		next = leaserecord.Acquire(cur, w, now, leaserecord.TakeoverHow(cur), floor)
	case canLeadNamed(g.Pods, holder):
		// A leader that can still lead gives way on purpose (to the preferred pod, or to
		// the workload's newest revision): a handover, in one write.
		released := leaserecord.HandOver(cur, holder, want, "", now, g.LeaseDuration)
		next = leaserecord.Acquire(released, w, now, leaserecord.Handover, floor)
	default:
		// The leader can no longer lead: the manager releases for it and moves the
		// Lease in one write, which tells observers both.
		next = leaserecord.Acquire(leaserecord.Release(cur, holder, now), w, now, leaserecord.AfterRelease, floor)
	}
	updated, err := leases.Update(ctx, next, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("writing Lease %s for %q: %w", g.Lease, want, err)
	}
	return updated, nil
}

// labelledFor lists the pods that carry g's leader label. While want goes on
// holding the Lease and the cache shows it alone labelled, at the Lease's epoch, the
// cache is enough: only a renewal will be written. Otherwise they are read fresh, so
// that none is missed before the Lease moves. (A label the cache has not shown yet
// wakes the group when it does.)
func (h *Holder) labelledFor(ctx context.Context, g Group, want, holder string) ([]corev1.Pod, error) {
	cached, err := labelled(ctx, h.Client, g.Lease.Namespace, g.label())
	if err != nil {
		return nil, err
	}
	if want != "" && want == holder && len(cached) == 1 && cached[0].Name == want &&
		cached[0].Annotations[AnnotationEpoch] == strconv.Itoa(int(leaserecord.Epoch(g.Current))) {
		return cached, nil
	}
	return labelled(ctx, h.APIReader, g.Lease.Namespace, g.label())
}

// labelled lists the pods of namespace that carry group's leader label, whether
// the group's selector picks them or not.
func labelled(ctx context.Context, r client.Reader, namespace, group string) ([]corev1.Pod, error) {
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(namespace), client.MatchingLabels{LabelLeader: group}); err != nil {
		return nil, fmt.Errorf("listing the pods labelled leader of %s: %w", group, err)
	}
	return pods.Items, nil
}

// label puts the leader label on p for the term the written Lease names, unless it
// is there already. A pod another group's label marks is left alone (choose did
// not pick it; if the view was stale the precondition fails).
func (h *Holder) label(ctx context.Context, g Group, lease *coordinationv1.Lease, p *corev1.Pod) error {
	epoch := strconv.Itoa(int(leaserecord.Epoch(lease)))
	if p == nil || !leaserecord.Names(lease, p.Name, leaserecord.Epoch(lease)) ||
		(p.Labels[LabelLeader] == g.label() && p.Annotations[AnnotationEpoch] == epoch) {
		return nil
	}
	if !h.writing() {
		return errNotWriting
	}
	return h.patch(ctx, p, fmt.Sprintf(`{%q:%q}`, LabelLeader, g.label()), fmt.Sprintf(`{%q:%q}`, AnnotationEpoch, epoch))
}

// unlabel takes the leader label and the epoch off p. Removing a label can never
// make two leaders, so it needs no check that this instance still writes.
func (h *Holder) unlabel(ctx context.Context, p *corev1.Pod) error {
	return h.patch(ctx, p, fmt.Sprintf(`{%q:null}`, LabelLeader), fmt.Sprintf(`{%q:null}`, AnnotationEpoch))
}

// patch merges labels and annotations into p, on the condition that p is still the
// version read: a stale view (a pod relabelled, re-created, or labelled by another
// group meanwhile) fails with a conflict, and the next reconcile decides again.
func (h *Holder) patch(ctx context.Context, p *corev1.Pod, labels, annotations string) error {
	patch := fmt.Sprintf(`{"metadata":{"resourceVersion":%q,"labels":%s,"annotations":%s}}`, p.ResourceVersion, labels, annotations)
	if err := h.Client.Patch(ctx, p, client.RawPatch(types.MergePatchType, []byte(patch))); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("relabelling pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}

// pick returns the pod called name, the fresh labelled copy if there is one.
func pick(labelled, pods []corev1.Pod, name string) *corev1.Pod {
	for _, list := range [][]corev1.Pod{labelled, pods} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}
