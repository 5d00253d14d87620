package podsource

import (
	"context"
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
	Leases coordinationv1client.LeasesGetter
	Clock  clock.PassiveClock
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
	// EpochFloor is the highest epoch the group recorded: a re-created Lease starts
	// above it.
	EpochFloor int32
}

// Sync makes the Lease and the leader label name the pod that should lead, in the
// order that never shows two leaders: take the label off the old leader, move the
// Lease, then label the new one. It returns the Lease as written (Current when
// unchanged) and when to renew next.
//
// A holder that is not ours keeps the Lease until it expires on this observer's
// clock: until then Sync writes nothing and labels no pod.
func (h *Holder) Sync(ctx context.Context, g Group) (*coordinationv1.Lease, time.Duration, error) {
	holder := leaserecord.Holder(g.Current)
	foreign := holder != "" && !g.ours(holder)
	g.Expired = g.Expired || (!foreign && g.RenewedLongAgo)
	if g.Expired {
		holder = ""
	}
	want := choose(g.Pods, holder, g.Preferred)
	if g.Suspended || (foreign && !g.Expired) {
		want = ""
	}
	for i := range g.Pods {
		if p := &g.Pods[i]; p.Name != want && p.Labels[LabelLeader] != "" {
			if err := h.patchLeader(ctx, p, nil); err != nil {
				return nil, 0, err
			}
		}
	}

	if foreign && !g.Expired {
		return g.Current, 0, nil
	}
	now := h.Clock.Now()
	lease, err := h.writeLease(ctx, g, want, holder, now)
	if err != nil {
		return nil, 0, err
	}
	if want != "" {
		epoch := strconv.Itoa(int(leaserecord.Epoch(lease)))
		for i := range g.Pods {
			if p := &g.Pods[i]; p.Name == want && (p.Labels[LabelLeader] != "true" || p.Annotations[AnnotationEpoch] != epoch) {
				if err := h.patchLeader(ctx, p, &epoch); err != nil {
					return lease, 0, err
				}
			}
		}
	}
	if want == "" || lease == nil || lease.Spec.RenewTime == nil {
		return lease, 0, nil
	}
	return lease, max(lease.Spec.RenewTime.Add(g.RetryPeriod).Sub(now), time.Millisecond), nil
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
	w := leaserecord.Writer{Identity: want, LeaseDuration: g.LeaseDuration, OwnerReferences: []metav1.OwnerReference{g.Owner}}
	cur := g.Current
	var next *coordinationv1.Lease
	switch {
	case cur == nil && want == "":
		return nil, nil
	case cur == nil:
		next = leaserecord.Create(g.Lease, w, now, g.EpochFloor+1)
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
		next = leaserecord.Acquire(cur, w, now, leaserecord.TakeoverHow(cur))
	case want == g.Preferred && canLeadNamed(g.Pods, holder):
		// A Ready leader gives way to the preferred pod: a handover, in one write.
		released := leaserecord.HandOver(cur, holder, want, now, g.LeaseDuration)
		next = leaserecord.Acquire(released, w, now, leaserecord.Handover)
	default:
		// The leader can no longer lead: the manager releases for it and moves the
		// Lease in one write, which tells observers both.
		next = leaserecord.Acquire(leaserecord.Release(cur, holder, now), w, now, leaserecord.AfterRelease)
	}
	updated, err := leases.Update(ctx, next, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("writing Lease %s for %q: %w", g.Lease, want, err)
	}
	return updated, nil
}

// patchLeader labels the pod as leader of epoch, or removes the label (epoch nil).
func (h *Holder) patchLeader(ctx context.Context, p *corev1.Pod, epoch *string) error {
	label, annotation := "null", "null"
	if epoch != nil {
		label, annotation = `"true"`, strconv.Quote(*epoch)
	}
	patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%s},"annotations":{%q:%s}}}`, LabelLeader, label, AnnotationEpoch, annotation)
	if err := h.Client.Patch(ctx, p, client.RawPatch(types.MergePatchType, []byte(patch))); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("relabelling pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return nil
}
