package controller

import (
	"context"
	"fmt"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/groups"
	"github.com/election-manager/election-manager/internal/leaserecord"
)

// A group's Lease carries leaserecord.Finalizer, so that its epoch outlives it: a
// deleted Lease waits, terminating, until the status writer has recorded its epoch
// in the group's status, which a Lease created again starts above. Only the status
// writer lets it go, and only after its own write.

// letGo removes the finalizer of the group's deleted Lease l once group's status —
// as the API server returned it — records l's epoch. The update is guarded by l's
// resourceVersion: a record written since (another party's acquisition) is
// recorded first, at the next reconcile.
func (r *LeaderGroupReconciler) letGo(ctx context.Context, group *v1alpha1.LeaderGroup, l *coordinationv1.Lease) error {
	if !leaserecord.Deleting(l) || !leaserecord.Kept(l) || groups.EpochFloor(group) < leaserecord.Epoch(l) {
		return nil
	}
	if err := r.Update(ctx, leaserecord.Unkept(l)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("letting Lease %s/%s go after recording its epoch %d: %w", l.Namespace, l.Name, leaserecord.Epoch(l), err)
	}
	return nil
}

// letOrphansGo removes the finalizer from the Leases of a group that no longer
// exists: there is no status left to record their epochs in. The group's absence
// is read fresh, not from the cache, which holds only the groups this installation
// serves.
func (r *LeaderGroupReconciler) letOrphansGo(ctx context.Context, group types.NamespacedName) error {
	for _, l := range r.Leases.List(group.Namespace) {
		if !leaserecord.Kept(l) || !ofGroup(l, group.Name) {
			continue
		}
		g := &v1alpha1.LeaderGroup{}
		err := r.APIReader.Get(ctx, group, g)
		switch {
		case err == nil && groups.Lease(g) == types.NamespacedName{Namespace: l.Namespace, Name: l.Name}:
			continue // a group of that name uses it (again): its reconciles record the epoch
		case err != nil && !apierrors.IsNotFound(err):
			return fmt.Errorf("reading LeaderGroup %s before letting its Leases go: %w", group, err)
		}
		if err := r.Update(ctx, leaserecord.Unkept(l)); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("letting Lease %s/%s of the deleted LeaderGroup %s go: %w", l.Namespace, l.Name, group, err)
		}
	}
	return nil
}

// groupsKeeping names the groups a kept Lease says it belongs to: by its owner
// references and its group label, in its namespace.
func groupsKeeping(l *coordinationv1.Lease) []types.NamespacedName {
	var out []types.NamespacedName
	if name := l.Labels[groups.LabelGroup]; name != "" {
		out = append(out, types.NamespacedName{Namespace: l.Namespace, Name: name})
	}
	for _, o := range l.OwnerReferences {
		if o.Kind == "LeaderGroup" && o.APIVersion == v1alpha1.GroupVersion.String() && o.Name != l.Labels[groups.LabelGroup] {
			out = append(out, types.NamespacedName{Namespace: l.Namespace, Name: o.Name})
		}
	}
	return out
}

// ofGroup tells whether l says it belongs to the group named name in its namespace.
func ofGroup(l *coordinationv1.Lease, name string) bool {
	for _, g := range groupsKeeping(l) {
		if g.Name == name {
			return true
		}
	}
	return false
}
