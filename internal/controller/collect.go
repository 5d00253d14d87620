package controller

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Nothing a crashed instance leaves behind may pile up: its presence Lease (a crash
// deletes nothing) and, once that is deleted, its tombstone in every process's
// Lease tracker.

// presenceCollectAfter is how many of the lock's leaseDurations a presence Lease
// stays unchanged before the status writer deletes it: three past its expiry. A
// live instance renews every retry period; one that stopped gracefully deleted its
// own; one that was partitioned for that long and comes back creates it anew.
const presenceCollectAfter = 4

// collect runs once per lock leaseDuration for the life of the process: it prunes
// the Lease tracker, reports its size, and, while this instance writes status,
// deletes the presence Leases left behind.
func (r *LeaderGroupReconciler) collect(ctx context.Context) error {
	period := r.Writer.Config().LeaseDuration
	ticker := time.NewTicker(period)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		tracker := r.Leases.Tracker()
		tracker.Prune()
		records, tombstones := tracker.Size()
		leaseTrackerEntries.WithLabelValues("records").Set(float64(records))
		leaseTrackerEntries.WithLabelValues("tombstones").Set(float64(tombstones))
		if r.Writer.IsLeader() {
			r.deleteStalePresence(ctx, presenceCollectAfter*period)
		}
	}
}

// deleteStalePresence deletes the presence Leases unchanged for after. Each delete
// is guarded by the version judged stale: a renewal in between wins.
func (r *LeaderGroupReconciler) deleteStalePresence(ctx context.Context, after time.Duration) {
	logger := klog.FromContext(ctx)
	for _, l := range r.presence.stale(r.Clock.Now(), after) {
		uid, rv := l.UID, l.ResourceVersion
		err := r.Delete(ctx, l.DeepCopy(), client.Preconditions{UID: &uid, ResourceVersion: &rv})
		switch {
		case err == nil:
			logger.V(1).Info("Deleted the presence Lease of a stopped instance", "lease", klog.KObj(l), "identity", l.Spec.HolderIdentity)
		case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
		default:
			logger.Error(err, "Deleting a stale presence Lease", "lease", klog.KObj(l))
		}
	}
}
