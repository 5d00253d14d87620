package controller

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/groups"
	"github.com/election-manager/election-manager/internal/leaserecord"
	"github.com/election-manager/election-manager/internal/podsource"
)

// podsView is what the status writer did for a Pods group: who could lead, the Lease
// as it wrote it, and when to renew.
type podsView struct {
	candidates []v1alpha1.CandidateStatus
	lease      *coordinationv1.Lease
	renewIn    time.Duration
}

// syncPods holds a Pods group's Lease for its chosen pod when the plan says so.
// Only the status writer calls it; otherwise it only takes the group's leader
// label off the pods that still carry it.
func (r *LeaderGroupReconciler) syncPods(ctx context.Context, group *v1alpha1.LeaderGroup, lease types.NamespacedName, plan plan) (*podsView, error) {
	if !plan.holdPods {
		return nil, r.unlabelLeftovers(ctx, client.ObjectKeyFromObject(group))
	}
	selector, err := metav1.LabelSelectorAsSelector(group.Spec.Candidates.PodSelector)
	if err != nil {
		return nil, fmt.Errorf("spec.candidates.podSelector: %w", err)
	}
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(group.Namespace), client.MatchingLabelsSelector{Selector: selector}); err != nil {
		return nil, fmt.Errorf("listing the candidate pods: %w", err)
	}
	current := r.Leases.Get(lease)
	written, renewIn, err := r.Pods.Sync(ctx, podsource.Group{
		Lease: lease, Pods: pods.Items, Current: current,
		Expired:        r.expired(lease, current, group.Spec.LeaseDuration.Duration),
		RenewedLongAgo: r.renewedLongAgo(current, group.Spec.LeaseDuration.Duration),
		Suspended:      plan.suspended(),
		Preferred:      group.Spec.PreferredHolder,
		LeaseDuration:  group.Spec.LeaseDuration.Duration, RetryPeriod: group.Spec.RetryPeriod.Duration,
		Owner:                ownerReference(group),
		EpochFloor:           r.epochFloor(client.ObjectKeyFromObject(group), group.Spec.RetryPeriod.Duration),
		Labels:               groups.Labels(group),
		MoveToNewestRevision: groups.PreferNewestRevision(group),
	})
	if err != nil {
		return nil, err
	}
	return &podsView{candidates: podsource.Candidates(pods.Items, group.Name), lease: written, renewIn: renewIn}, nil
}

// unlabelLeftovers takes the leader label of group (which exists no more, or is
// not a Pods group that may run) off every pod. The cache says whether any pod
// carries it; the removal reads them fresh. Nothing happens without the Pods source.
func (r *LeaderGroupReconciler) unlabelLeftovers(ctx context.Context, group types.NamespacedName) error {
	if r.Pods == nil || len(validation.IsValidLabelValue(group.Name)) > 0 {
		return nil // no pod can carry a label of that value
	}
	var pods corev1.PodList
	if err := r.List(ctx, &pods, client.InNamespace(group.Namespace), client.MatchingLabels{podsource.LabelLeader: group.Name}); err != nil {
		return fmt.Errorf("listing the pods labelled leader of %s: %w", group.Name, err)
	}
	if len(pods.Items) == 0 {
		return nil
	}
	return r.Pods.Unlabel(ctx, group.Namespace, group.Name)
}

// labelledGroups are the groups that pods of the cache carry the leader label of:
// the status writer wakes them when it takes over, so that labels of a group
// deleted while no instance wrote are removed too.
func (r *LeaderGroupReconciler) labelledGroups(ctx context.Context) []reconcile.Request {
	var pods corev1.PodList
	if r.Pods == nil || r.List(ctx, &pods, client.HasLabels{podsource.LabelLeader}) != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range pods.Items {
		if group := pods.Items[i].Labels[podsource.LabelLeader]; group != "" {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: pods.Items[i].Namespace, Name: group}})
		}
	}
	return out
}

// groupsForPod wakes the Pods groups in a pod's namespace whose selector picks it,
// and the group whose leader label it carries (which may exist no more).
func (r *LeaderGroupReconciler) groupsForPod(ctx context.Context, pod client.Object) []reconcile.Request {
	var out []reconcile.Request
	if group := pod.GetLabels()[podsource.LabelLeader]; group != "" {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: pod.GetNamespace(), Name: group}})
	}
	var groups v1alpha1.LeaderGroupList
	if err := r.List(ctx, &groups, client.InNamespace(pod.GetNamespace())); err != nil {
		return out
	}
	for _, g := range groups.Items {
		if g.Spec.Candidates.Source != v1alpha1.SourcePods {
			continue
		}
		selector, err := metav1.LabelSelectorAsSelector(g.Spec.Candidates.PodSelector)
		if err == nil && selector.Matches(labels.Set(pod.GetLabels())) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&g)})
		}
	}
	return out
}

// expired tells whether the Lease's record has not changed for its duration on this
// observer's clock.
func (r *LeaderGroupReconciler) expired(key types.NamespacedName, l *coordinationv1.Lease, leaseDuration time.Duration) bool {
	expiry, held := r.Leases.Tracker().Expiry(key, l, leaseDuration)
	return held && !r.Clock.Now().Before(expiry)
}

// renewedLongAgo tells whether the Lease's renewTime is older than its duration, on
// the writer's clock (see podsource.Group.RenewedLongAgo for whom it is trusted).
func (r *LeaderGroupReconciler) renewedLongAgo(l *coordinationv1.Lease, leaseDuration time.Duration) bool {
	return l != nil && l.Spec.RenewTime != nil && r.Clock.Now().Sub(l.Spec.RenewTime.Time) >= leaserecord.Duration(l, leaseDuration)
}
