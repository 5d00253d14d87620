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
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/election-manager/election-manager/internal/election"
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
	// Expired: Current's holder has not renewed for leaseDuration on our clock (a
	// status writer was gone that long).
	Expired bool
	// Suspended: no pod may lead; the Lease is released and the label removed.
	Suspended bool
	// Preferred is the pod to hand leadership to while it can lead.
	Preferred                  string
	LeaseDuration, RetryPeriod time.Duration
	Owner                      metav1.OwnerReference
}

// Sync makes the Lease and the leader label name the pod that should lead, in the
// order that never shows two leaders: take the label off the old leader, move the
// Lease, then label the new one. It returns the Lease as written (Current when
// unchanged) and when to renew next.
func (h *Holder) Sync(ctx context.Context, g Group) (*coordinationv1.Lease, time.Duration, error) {
	holder := election.HolderOf(g.Current)
	if g.Expired {
		holder = ""
	}
	want := choose(g.Pods, holder, g.Preferred)
	if g.Suspended {
		want = ""
	}
	for i := range g.Pods {
		if p := &g.Pods[i]; p.Name != want && p.Labels[LabelLeader] != "" {
			if err := h.patchLeader(ctx, p, nil); err != nil {
				return nil, 0, err
			}
		}
	}

	now := h.Clock.Now()
	lease, err := h.writeLease(ctx, g, want, holder, now)
	if err != nil {
		return nil, 0, err
	}
	if want != "" {
		epoch := strconv.Itoa(int(election.EpochOf(lease)))
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

// writeLease creates, moves, renews or releases the Lease for want.
func (h *Holder) writeLease(ctx context.Context, g Group, want, holder string, now time.Time) (*coordinationv1.Lease, error) {
	leases := h.Leases.Leases(g.Lease.Namespace)
	t := metav1.NewMicroTime(now)
	seconds := int32(g.LeaseDuration / time.Second)
	switch {
	case g.Current == nil && want == "":
		return nil, nil
	case g.Current == nil:
		l := &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: g.Lease.Name, Namespace: g.Lease.Namespace,
				OwnerReferences: []metav1.OwnerReference{g.Owner},
				Annotations:     map[string]string{election.AnnotationAcquiredHow: string(election.AcquiredElected)}},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &want, LeaseDurationSeconds: &seconds,
				AcquireTime: &t, RenewTime: &t, LeaseTransitions: ptr.To[int32](1)},
		}
		return create(ctx, leases, l)
	}

	l := g.Current.DeepCopy()
	switch {
	case want == holder && want == "":
		if election.HolderOf(l) == "" {
			return g.Current, nil // already released
		}
		release(l, election.HolderOf(l), now)
	case want == holder:
		if l.Spec.RenewTime != nil && now.Before(l.Spec.RenewTime.Add(g.RetryPeriod)) &&
			ptr.Deref(l.Spec.LeaseDurationSeconds, 0) == seconds {
			return g.Current, nil // not due
		}
		l.Spec.RenewTime, l.Spec.LeaseDurationSeconds = &t, &seconds
	case want == "":
		release(l, election.HolderOf(l), now)
	default:
		how := election.AcquiredAfterRelease
		switch {
		case g.Expired:
			how = election.AcquiredAfterExpiry
			delete(l.Annotations, election.AnnotationReleasedBy)
			delete(l.Annotations, election.AnnotationReleasedAt)
		case election.HolderOf(l) != "" && want == g.Preferred && canLeadNamed(g.Pods, holder):
			// A Ready leader gives way to the preferred pod: a handover.
			release(l, holder, now)
			how = election.AcquiredHandover
		case election.HolderOf(l) != "":
			// The leader can no longer lead: the manager releases for it and moves the
			// Lease in one write, which tells observers both.
			release(l, election.HolderOf(l), now)
		}
		setAnnotation(l, election.AnnotationAcquiredHow, string(how))
		epoch := election.EpochOf(l) + 1
		l.Spec.HolderIdentity, l.Spec.LeaseTransitions = &want, &epoch
		l.Spec.AcquireTime, l.Spec.RenewTime, l.Spec.LeaseDurationSeconds = &t, &t, &seconds
	}
	updated, err := leases.Update(ctx, l, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("writing Lease %s for %q: %w", g.Lease, want, err)
	}
	return updated, nil
}

func create(ctx context.Context, leases coordinationv1client.LeaseInterface, l *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	created, err := leases.Create(ctx, l, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating Lease %s/%s: %w", l.Namespace, l.Name, err)
	}
	return created, nil
}

// release clears the holder as an elector's release does, recording who and when.
func release(l *coordinationv1.Lease, holder string, now time.Time) {
	delete(l.Annotations, election.AnnotationAcquiredHow)
	setAnnotation(l, election.AnnotationReleasedBy, holder)
	setAnnotation(l, election.AnnotationReleasedAt, now.UTC().Format(time.RFC3339Nano))
	l.Spec.HolderIdentity = nil
}

func setAnnotation(l *coordinationv1.Lease, k, v string) {
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[k] = v
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
