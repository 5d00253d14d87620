package election

import (
	"context"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/election-manager/election-manager/internal/leaserecord"
)

// releaseAttempts bounds the conflict retries of a release: each one means someone
// touched the Lease again, which after one or two rounds means it is not ours.
const releaseAttempts = 3

// shutdown ends the elector on a graceful stop: it lets the write in flight finish
// (its context is cancelled, so it returns quickly), ends leadership, then releases
// when the elector was still leading and ReleaseOnCancel is set.
func (l *loop) shutdown(ctx context.Context) {
	e, cfg := l.e, l.e.config()
	if w := l.inflight; w != nil {
		w.cancel()
		// Bounded: do not rely on the transport honouring the cancellation.
		t := e.clock.NewTimer(cfg.RenewDeadline)
		select {
		case r := <-w.result:
			l.inflight = nil
			if leading, until := e.leadingState(); w.kind == writeRenew && r.err == nil && leading && !reached(e.clock.Now(), until) {
				l.own = r.lease // the release must be based on the newest version
			}
		case <-t.C():
		}
		t.Stop()
	}
	leading, until := e.leadingState()
	stillValid := leading && !reached(e.clock.Now(), until)
	own := l.own
	// The leadership view ends before the release is sent: nobody may act on this
	// elector's leadership once a follower can take over.
	l.lose("Elector stopped")
	if stillValid && cfg.ReleaseOnCancel && own != nil {
		l.release(context.WithoutCancel(ctx), own, "")
	}
}

// handOver ends leadership and releases the Lease for identity to, which takes it at
// once while other candidates wait. The elector then follows like any other.
func (l *loop) handOver(ctx context.Context, to string) {
	own := l.own
	l.lose("Handing over", "to", to)
	if own != nil {
		l.release(ctx, own, to)
	}
}

// release clears the holder of own, our last written version. On a conflict it
// re-reads and releases only if the record still names this identity and epoch: a
// newer holder's lease is never cleared.
// With to set, the release hands the Lease to that identity.
func (l *loop) release(ctx context.Context, own *coordinationv1.Lease, to string) {
	e, cfg := l.e, l.e.config()
	ctx, cancel := context.WithTimeout(ctx, cfg.RenewDeadline)
	defer cancel()
	leases := e.client.Leases(e.key.Namespace)
	cur := own
	for range releaseAttempts {
		_, err := leases.Update(ctx, released(cur, e.id, to, e.clock.Now(), cfg), metav1.UpdateOptions{})
		if err == nil {
			l.logger.Info("Released lease", "epoch", l.epoch)
			return
		}
		if !apierrors.IsConflict(err) {
			l.logger.Error(err, "Failed to release lease", "epoch", l.epoch)
			return
		}
		if cur, err = leases.Get(ctx, e.key.Name, metav1.GetOptions{}); err != nil {
			l.logger.Error(err, "Failed to read lease for release", "epoch", l.epoch)
			return
		}
		if !leaserecord.Names(cur, e.id, l.epoch) || cur.UID != own.UID {
			l.logger.V(2).Info("Not releasing: the lease names another term", "holder", leaserecord.Holder(cur), "holderEpoch", leaserecord.Epoch(cur))
			return
		}
	}
	l.logger.Info("Gave up releasing lease after repeated conflicts", "epoch", l.epoch)
}

// released is own released by identity at now, for to when set.
func released(own *coordinationv1.Lease, identity, to string, now time.Time, cfg *Config) *coordinationv1.Lease {
	if to == "" {
		return leaserecord.Release(own, identity, now)
	}
	return leaserecord.HandOver(own, identity, to, cfg.HandOverAttempt, now, cfg.Timings().HandoverReservation())
}
