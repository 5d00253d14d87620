// Package controller reconciles LeaderGroups: it runs this instance's electors for the
// groups it serves and, while this instance holds the manager's own lock, derives
// each group's status from its Lease.
package controller

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/election"
	"github.com/election-manager/election-manager/internal/groups"
	"github.com/election-manager/election-manager/internal/leaserecord"
	"github.com/election-manager/election-manager/internal/podsource"
)

// +kubebuilder:rbac:groups=coordination.electionmanager.dev,resources=leadergroups,verbs=get;list;watch
// +kubebuilder:rbac:groups=coordination.electionmanager.dev,resources=leadergroups/status,verbs=get;patch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// LeaderGroupReconciler reconciles LeaderGroups.
type LeaderGroupReconciler struct {
	client.Client
	// APIReader reads from the API server, not the cache: the epoch floor before an
	// epoch is handed out, and whether a group is really gone.
	APIReader client.Reader
	Recorder  EventRecorder
	// Identity is this instance's --id: its identity in every Manager group.
	Identity string
	Electors *election.Registry
	Leases   *election.LeaseInformer
	// Writer is the elector of the manager's own lock; while it leads, this
	// instance writes status. The lock's name marks this installation's presence
	// Leases, which live in its namespace.
	Writer *election.Elector
	// ExternalLeaseNamespaces are the other namespaces External groups may name.
	ExternalLeaseNamespaces []string
	// Pods holds Pods groups' Leases for their pods; nil: the Pods source is off.
	Pods *podsource.Holder
	// Clock is the observer's clock; nil: the Lease tracker's, which every expiry
	// is measured on.
	Clock clock.PassiveClock

	presence *presence
	expiry   *expiryWatch
	own      *ownWrites
	turns    *statusTurns
	queue    atomic.Pointer[workqueue.TypedRateLimitingInterface[reconcile.Request]]
}

// EventRecorder records Events (events.k8s.io) on a LeaderGroup; controller-runtime's
// recorder is one.
type EventRecorder interface {
	Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any)
}

const leaseIndex = "leaderGroup.lease"

// Reconcile runs this instance's elector for the group and, when this instance is the
// status writer, writes the group's status once if it changed.
func (r *LeaderGroupReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	group := &v1alpha1.LeaderGroup{}
	if err := r.Get(ctx, req.NamespacedName, group); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, r.forget(ctx, req.NamespacedName)
		}
		return ctrl.Result{}, err
	}
	lease := groups.Lease(group)
	plan, err := r.plan(ctx, group, lease)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.syncElector(ctx, group, lease, plan); err != nil {
		return ctrl.Result{}, err
	}
	if !r.Writer.IsLeader() {
		r.turns.forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	if r.own.stale(group) {
		// The cache does not show this writer's last status write yet; its arrival
		// wakes the group.
		return ctrl.Result{RequeueAfter: staleRecheck}, nil
	}
	pods, err := r.syncPods(ctx, group, lease, plan)
	if err != nil {
		return ctrl.Result{}, err
	}
	in, later := r.observe(group, lease, plan, pods)
	status, events := computeStatus(in)
	var turnIn time.Duration
	if equality.Semantic.DeepEqual(group.Status, status) {
		r.turns.forget(req.NamespacedName) // nothing to write: no turn to wait for
	} else {
		// While the API server is strained, the group's changes gather until its turn.
		if turnIn = r.turns.take(req.NamespacedName, urgent(&group.Status, &status)); turnIn == 0 {
			if err := r.writeStatus(ctx, group, status, events); err != nil {
				return ctrl.Result{}, err
			}
		}
	}
	if in.obs != nil && turnIn == 0 {
		if err := r.letGo(ctx, group, in.obs.lease); err != nil {
			return ctrl.Result{}, err
		}
	}
	if later.expires {
		r.expiry.group(lease, group.Spec.LeaseDuration.Duration, req.NamespacedName)
	}
	return ctrl.Result{RequeueAfter: soonest(turnIn, later.renewIn)}, nil
}

// soonest is the shorter of two requeue delays, zero meaning none.
func soonest(a, b time.Duration) time.Duration {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}

// forget stops what ran for a deleted group. Its Lease goes with it (it is owned);
// its leader label is the status writer's to remove.
func (r *LeaderGroupReconciler) forget(ctx context.Context, group types.NamespacedName) error {
	r.Electors.Stop(group.String())
	r.own.forget(group)
	r.turns.forget(group)
	forgetGroupMetrics(group.Namespace, group.Name)
	if !r.Writer.IsLeader() {
		return nil
	}
	if err := r.letOrphansGo(ctx, group); err != nil {
		return err
	}
	return r.unlabelLeftovers(ctx, group)
}

// plan lists the groups naming the same Lease and decides what this instance does
// for group.
func (r *LeaderGroupReconciler) plan(ctx context.Context, group *v1alpha1.LeaderGroup, lease types.NamespacedName) (plan, error) {
	var same v1alpha1.LeaderGroupList
	if err := r.List(ctx, &same, client.MatchingFields{leaseIndex: lease.String()}); err != nil {
		return plan{}, fmt.Errorf("listing the groups on Lease %s: %w", lease, err)
	}
	inst := installation{lock: r.Writer.Config().Lease, externalNamespaces: r.ExternalLeaseNamespaces, podsEnabled: r.Pods != nil}
	return planFor(group, blockedBy(group, lease, inst, same.Items)), nil
}

// syncElector runs this instance's elector when the plan says so, and stops it
// (releasing the Lease if it leads) otherwise.
func (r *LeaderGroupReconciler) syncElector(ctx context.Context, group *v1alpha1.LeaderGroup, lease types.NamespacedName, plan plan) error {
	key := client.ObjectKeyFromObject(group).String()
	if !plan.runElector {
		r.Electors.Stop(key)
		return nil
	}
	labels := []string{group.Namespace, group.Name}
	logger := klog.FromContext(ctx)
	// Hand over only to a preferred identity that is a live candidate now; when it
	// comes back after a failure, the next reconcile hands leadership back to it.
	handOverTo, attempt := handover(group, r.presence.find(group, group.Spec.PreferredHolder, r.Clock.Now()))
	cfg := electorConfig(group, r.Identity, r.epochFloor(client.ObjectKeyFromObject(group), group.Spec.RetryPeriod.Duration))
	cfg.HandOverTo, cfg.HandOverAttempt = handOverTo, attempt
	// Asked again at the moment of the handover (the target may have left since), and
	// whenever the Lease is free, from the elector's goroutine: of a copy, as the status
	// write decodes its response into group.
	g := group.DeepCopy()
	cfg.Live = func(id string) bool { return r.presence.find(g, id, r.Clock.Now()) != nil }
	cfg.Successor = func(prev string) string { return r.presence.successor(g, prev, r.Clock.Now()) }
	e, err := r.Electors.Ensure(key, cfg, election.Callbacks{
		OnStartedLeading: func(epoch int32) {
			isLeader.WithLabelValues(labels...).Set(1)
			logger.Info("Leading", "lease", lease.String(), "epoch", epoch)
		},
		OnStoppedLeading: func() {
			isLeader.WithLabelValues(labels...).Set(0)
			logger.Info("Stopped leading", "lease", lease.String())
		},
	})
	if err != nil {
		return fmt.Errorf("running the elector on Lease %s: %w", lease, err)
	}
	r.checkSplitBrain(group, e.Leader(), r.Leases.Get(lease))
	return nil
}

// epochFloor reads the group's recorded epochs for a writer about to hand out an
// epoch: from the API server when asked fresh (the cache may not show yet the epoch
// a deleted Lease was recorded with before it was let go), else from the cache.
func (r *LeaderGroupReconciler) epochFloor(key types.NamespacedName, timeout time.Duration) func(fresh bool) (int32, error) {
	return func(fresh bool) (int32, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		var reader client.Reader = r.Client
		if fresh {
			reader = r.APIReader
		}
		g := &v1alpha1.LeaderGroup{}
		if err := reader.Get(ctx, key, g); err != nil {
			return 0, fmt.Errorf("reading LeaderGroup %s for its epoch floor: %w", key, err)
		}
		return groups.EpochFloor(g), nil
	}
}

// checkSplitBrain raises the alarm when this instance's elector says it leads while
// the Lease names someone else at the same or a later epoch: two identities claim
// the group. (An older epoch is only the informer lagging behind our own write.)
// The elector's contract makes this impossible; the alarm is there in case it breaks.
func (r *LeaderGroupReconciler) checkSplitBrain(group *v1alpha1.LeaderGroup, mine election.LeaderInfo, l *coordinationv1.Lease) {
	if holder := leaserecord.Holder(l); mine.Leading && holder != "" && holder != r.Identity && leaserecord.Epoch(l) >= mine.Epoch {
		splitBrain.WithLabelValues(group.Namespace, group.Name).Inc()
		r.Recorder.Eventf(group, nil, corev1.EventTypeWarning, EventSplitBrain, "Observe",
			"%s leads in its own view (epoch %d) while the Lease names %s (epoch %d)", r.Identity, mine.Epoch, holder, leaserecord.Epoch(l))
	}
}

// later is what may change a group's status with time alone.
type later struct {
	// expires: the group's Lease has a holder that has not expired yet on this
	// observer's clock; the expiry watch wakes the group when it does.
	expires bool
	// renewIn is when this writer renews the Pods group's Lease for its leader pod
	// (0: it does not).
	renewIn time.Duration
}

// observe gathers what the status is computed from, and what may change it later.
// Candidates that stop renewing their presence Leases wake every group (onLease).
func (r *LeaderGroupReconciler) observe(group *v1alpha1.LeaderGroup, lease types.NamespacedName, plan plan, pods *podsView) (statusInput, later) {
	now := r.Clock.Now()
	in := statusInput{group: group, lease: lease, blocked: plan.blocked, now: now}
	switch group.Spec.Candidates.Source {
	case v1alpha1.SourceManager:
		in.candidates = r.presence.candidates(group, now)
		_, in.handoverAttempt = handover(group, r.presence.find(group, group.Spec.PreferredHolder, now))
	case v1alpha1.SourcePods:
		in.candidates = []v1alpha1.CandidateStatus{}
	}
	var next later
	if !plan.observe {
		return in, next
	}
	obs := &observation{lease: r.Leases.Get(lease), now: now}
	if pods != nil {
		// What this writer just wrote is fresher than the informer's copy.
		in.candidates, obs.lease = pods.candidates, pods.lease
		next.renewIn = pods.renewIn
	}
	if leaserecord.Deleting(obs.lease) {
		in.obs = obs // its holder stopped at the deletion: nothing expires
		return in, next
	}
	if expiry, ok := r.Leases.Tracker().Expiry(lease, obs.lease, group.Spec.LeaseDuration.Duration); ok {
		if now.Before(expiry) {
			next.expires = true
		} else {
			obs.expiredAt = &expiry
		}
	}
	in.obs = obs
	return in, next
}

// writeStatus writes the changed status once (its turn taken), then records the events and
// metrics it implies. The optimistic lock keeps a writer that just lost the
// manager's lock from overwriting the history its successor wrote.
func (r *LeaderGroupReconciler) writeStatus(ctx context.Context, group *v1alpha1.LeaderGroup, status v1alpha1.LeaderGroupStatus, events []event) error {
	prev, base := group.Status, group.ResourceVersion
	patch := client.MergeFromWithOptions(group.DeepCopy(), client.MergeFromWithOptimisticLock{})
	group.Status = status
	sent := r.Clock.Now()
	err := r.Status().Patch(ctx, group, patch)
	r.turns.done(client.ObjectKeyFromObject(group), r.Clock.Now().Sub(sent), err != nil)
	if err != nil {
		return fmt.Errorf("writing the status: %w", err)
	}
	r.own.wrote(group, base)
	recordGroupMetrics(group, prev, status)
	for _, e := range events {
		eventType := corev1.EventTypeNormal
		if e.warning {
			eventType = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(group, nil, eventType, e.reason, "Observe", "%s", e.message)
	}
	return nil
}

// SetupWithManager registers the controller. Leases come from the elector's shared
// informer, so the process watches Leases once.
func (r *LeaderGroupReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if r.Clock == nil {
		r.Clock = r.Leases.Tracker().Clock()
	}
	r.presence = newPresence(r.Writer.Config().Lease, r.Leases.Tracker(), r.Leases.Get, r.Writer.Config().LeaseDuration)
	r.own = newOwnWrites()
	r.turns = newStatusTurns(r.Electors.Strained, r.Clock, func(g types.NamespacedName) { r.wake([]types.NamespacedName{g}, false) })
	r.expiry = newExpiryWatch(r.Leases.Tracker(), r.Leases.Get, clock.RealClock{}, r.wake)
	if err := mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.LeaderGroup{}, leaseIndex, func(o client.Object) []string {
		return []string{groups.Lease(o.(*v1alpha1.LeaderGroup)).String()}
	}); err != nil {
		return fmt.Errorf("indexing LeaderGroups by Lease: %w", err)
	}
	synced, err := r.Leases.AddEventHandler(r.onLease)
	if err != nil {
		return err
	}
	if err := mgr.Add(manager.RunnableFunc(r.collect)); err != nil {
		return fmt.Errorf("adding the presence collector: %w", err)
	}
	if err := mgr.Add(manager.RunnableFunc(r.releaseTurns)); err != nil {
		return fmt.Errorf("adding the status turns: %w", err)
	}
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.LeaderGroup{}, builder.WithPredicates(
			// Status writes change neither: they must not cause another reconcile,
			// except one a reconcile waits for (ownWrites).
			predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, r.own.arrived()))).
		WatchesRawSource(&syncedSource{Source: source.Func(r.startWaking), synced: synced}).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4})
	if r.Pods != nil {
		b = b.Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.groupsForPod))
	}
	return b.Complete(r)
}
