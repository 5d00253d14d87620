package controller

import (
	"context"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/priorityqueue"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/leaserecord"
)

// What wakes a group besides changes to the group itself: a new term on its Lease,
// its Lease or a candidate's presence Lease expiring (expiryWatch), a manager
// instance coming or going, and this instance becoming the status writer.

// startWaking is the controller's raw source: it keeps the queue to add to.
func (r *LeaderGroupReconciler) startWaking(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
	r.queue.Store(&q)
	return nil
}

// onLease runs on the Lease informer's goroutine for every add, update (old and
// cur) and delete (cur nil). Renewals only move the observer's clock (the Lease
// tracker has seen them): they wake nothing, unless they bring a Lease seen
// expired back.
func (r *LeaderGroupReconciler) onLease(old, cur *coordinationv1.Lease) {
	l := cur
	if l == nil {
		l = old
	}
	key := types.NamespacedName{Namespace: l.Namespace, Name: l.Name}
	r.expiry.seen(key, cur)
	if r.presence.isPresence(l) {
		if r.presence.observe(key, cur) {
			r.EnqueueAll()
		}
		if leaserecord.Holder(cur) != "" {
			// An instance that stops renewing leaves every group's candidates.
			r.expiry.everyGroup(key, r.presence.fallback)
		}
		return
	}
	if termChanged(old, cur) {
		var groups v1alpha1.LeaderGroupList
		if err := r.List(context.Background(), &groups, client.MatchingFields{leaseIndex: key.String()}); err == nil {
			r.enqueue(groups.Items, 0)
		}
	}
	if leaserecord.Deleting(cur) && leaserecord.Kept(cur) {
		// Its group may be gone: that group's reconcile lets the Lease go.
		r.wake(groupsKeeping(cur), false)
	}
}

// EnqueueAll wakes every group this instance serves, every group a pod carries the
// leader label of, and every group a kept Lease being deleted names; the status
// writer calls it when it takes over. It does not block.
func (r *LeaderGroupReconciler) EnqueueAll() {
	go func() {
		var groups v1alpha1.LeaderGroupList
		if err := r.List(context.Background(), &groups); err == nil {
			r.enqueue(groups.Items, handler.LowPriority)
		}
		if q := r.queue.Load(); q != nil {
			for _, req := range r.labelledGroups(context.Background()) {
				(*q).Add(req)
			}
		}
		for _, l := range r.Leases.List("") {
			if leaserecord.Deleting(l) && leaserecord.Kept(l) {
				// Deleted while no status writer ran; its group may be gone too.
				r.wake(groupsKeeping(l), false)
			}
		}
	}()
}

// wake is the expiry watch's way in: it enqueues groups, or every group.
func (r *LeaderGroupReconciler) wake(groups []types.NamespacedName, all bool) {
	if all {
		r.EnqueueAll()
	}
	q := r.queue.Load()
	if q == nil {
		return
	}
	for _, g := range groups {
		(*q).Add(reconcile.Request{NamespacedName: g})
	}
}

// enqueue adds groups at priority. Sweeps over every group (an instance came or
// went, this instance became the status writer) go at low priority, so that groups
// whose term just changed are not held back behind them: when a manager stops, its
// presence Lease goes first and sweeps every group, then its releases come.
func (r *LeaderGroupReconciler) enqueue(groups []v1alpha1.LeaderGroup, priority int) {
	q := r.queue.Load()
	if q == nil {
		return // not started: the controller's first list reconciles every group
	}
	reqs := make([]reconcile.Request, len(groups))
	for i := range groups {
		reqs[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&groups[i])}
	}
	if pq, ok := (*q).(priorityqueue.PriorityQueue[reconcile.Request]); ok {
		pq.AddWithOpts(priorityqueue.AddOpts{Priority: &priority}, reqs...)
		return
	}
	for _, req := range reqs {
		(*q).Add(req)
	}
}

// syncedSource holds the controller back until the Lease handler has seen every
// existing Lease: before that, a Lease missing from it may yet exist.
type syncedSource struct {
	source.Source
	synced func() bool
}

func (s *syncedSource) WaitForSync(ctx context.Context) error {
	return wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(context.Context) (bool, error) {
		return s.synced(), nil
	})
}
