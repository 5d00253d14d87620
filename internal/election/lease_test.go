package election

import (
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/election-manager/election-manager/internal/leaserecord"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func lease(holder string, epoch int32, durationSeconds int32, annotations map[string]string) *coordinationv1.Lease {
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "lock", ResourceVersion: "7", Annotations: annotations}}
	if holder != "" {
		l.Spec.HolderIdentity = ptr.To(holder)
	}
	if epoch != 0 {
		l.Spec.LeaseTransitions = ptr.To(epoch)
		l.Spec.AcquireTime = &metav1.MicroTime{Time: t0.Add(-time.Minute)}
	}
	if durationSeconds != 0 {
		l.Spec.LeaseDurationSeconds = ptr.To(durationSeconds)
	}
	return l
}

func TestDecideFollower(t *testing.T) {
	fallback := 15 * time.Second
	seen := func(l *coordinationv1.Lease, since time.Time) followerView { return followerView{cur: l, since: since} }
	gone := func(l *coordinationv1.Lease, at time.Time) followerView {
		return followerView{gone: &leaserecord.Tombstone{Lease: l, At: at}, heldBefore: true, missingSince: at}
	}
	tests := []struct {
		name string
		view followerView
		want followerStep
	}{
		{"no lease, never held: create at once", followerView{missingSince: t0}, followerStep{create: true, how: leaserecord.Elected}},
		{"deleted under a holder: wait for its expiry", gone(lease("b", 3, 10, nil), t0.Add(-9*time.Second)),
			followerStep{retryAt: t0.Add(time.Second)}},
		{"deleted under a holder, expired: create", gone(lease("b", 3, 10, nil), t0.Add(-10*time.Second)),
			followerStep{create: true, how: leaserecord.Elected}},
		{"deleted while released: create", gone(lease("", 3, 1, nil), t0),
			followerStep{create: true, how: leaserecord.Elected}},
		{"missing, held before, deletion not seen: wait a lease duration from finding it missing",
			followerView{heldBefore: true, missingSince: t0.Add(-5 * time.Second)},
			followerStep{retryAt: t0.Add(10 * time.Second)}},
		{"missing, held before, waited long enough: create",
			followerView{heldBefore: true, missingSince: t0.Add(-15 * time.Second)},
			followerStep{create: true, how: leaserecord.Elected}},
		{"released", seen(lease("", 3, 1, map[string]string{leaserecord.AnnotationReleasedBy: "b"}), t0),
			followerStep{acquire: true, how: leaserecord.AfterRelease}},
		{"released by client-go (no annotation)", seen(lease("", 3, 1, nil), t0),
			followerStep{acquire: true, how: leaserecord.AfterRelease}},
		{"created empty, never held", seen(lease("", 0, 0, nil), t0),
			followerStep{acquire: true, how: leaserecord.Elected}},
		{"held, seen just now", seen(lease("b", 3, 10, nil), t0),
			followerStep{retryAt: t0.Add(10 * time.Second)}},
		{"held, one nanosecond before expiry", seen(lease("b", 3, 10, nil), t0.Add(-10*time.Second+1)),
			followerStep{retryAt: t0.Add(1)}},
		{"held, expiring exactly now", seen(lease("b", 3, 10, nil), t0.Add(-10*time.Second)),
			followerStep{acquire: true, how: leaserecord.AfterExpiry}},
		{"held by this identity after a loss: same rule", seen(lease("me", 3, 10, nil), t0.Add(-11*time.Second)),
			followerStep{acquire: true, how: leaserecord.AfterExpiry}},
		{"handed over to this identity: take it at once", seen(lease("", 3, 10, map[string]string{leaserecord.AnnotationHandoverTo: "me"}), t0),
			followerStep{acquire: true, how: leaserecord.Handover}},
		{"handed over to another: theirs until it would expire", seen(lease("", 3, 10, map[string]string{leaserecord.AnnotationHandoverTo: "c"}), t0.Add(-4*time.Second)),
			followerStep{retryAt: t0.Add(6 * time.Second)}},
		{"handed over to another who never came: free after expiry", seen(lease("", 3, 10, map[string]string{leaserecord.AnnotationHandoverTo: "c"}), t0.Add(-10*time.Second)),
			followerStep{acquire: true, how: leaserecord.AfterRelease}},
		{"a new object in place of a held one: wait out the old holder, whatever the new record says",
			followerView{cur: lease("", 0, 0, nil), since: t0, gone: &leaserecord.Tombstone{Lease: lease("b", 7, 10, nil), At: t0.Add(-4 * time.Second)}},
			followerStep{retryAt: t0.Add(6 * time.Second)}},
		{"an empty record below the known epochs: wait a lease duration from first seeing it",
			followerView{cur: lease("", 0, 0, nil), since: t0.Add(-5 * time.Second), behind: true},
			followerStep{retryAt: t0.Add(10 * time.Second)}},
		{"an empty record below the known epochs, waited out: take it",
			followerView{cur: lease("", 0, 0, nil), since: t0.Add(-15 * time.Second), behind: true},
			followerStep{acquire: true, how: leaserecord.Elected}},
		{"released, another is the successor: wait its head start from seeing the release",
			followerView{cur: lease("", 3, 1, map[string]string{leaserecord.AnnotationReleasedBy: "b"}), since: t0.Add(-40 * time.Millisecond), headStart: 100 * time.Millisecond},
			followerStep{retryAt: t0.Add(60 * time.Millisecond)}},
		{"released, the successor's head start over: take it",
			followerView{cur: lease("", 3, 1, map[string]string{leaserecord.AnnotationReleasedBy: "b"}), since: t0.Add(-100 * time.Millisecond), headStart: 100 * time.Millisecond},
			followerStep{acquire: true, how: leaserecord.AfterRelease}},
		{"expired, another is the successor: wait its head start from the expiry",
			followerView{cur: lease("b", 3, 10, nil), since: t0.Add(-10 * time.Second), headStart: 100 * time.Millisecond},
			followerStep{retryAt: t0.Add(100 * time.Millisecond)}},
		{"expired, the successor's head start over: take it",
			followerView{cur: lease("b", 3, 10, nil), since: t0.Add(-10*time.Second - 100*time.Millisecond), headStart: 100 * time.Millisecond},
			followerStep{acquire: true, how: leaserecord.AfterExpiry}},
		{"handed over to this identity: no head start for anyone else",
			followerView{cur: lease("", 3, 10, map[string]string{leaserecord.AnnotationHandoverTo: "me"}), since: t0, headStart: 100 * time.Millisecond},
			followerStep{acquire: true, how: leaserecord.Handover}},
		{"held without a duration: own duration, not expired", seen(lease("b", 3, 0, nil), t0.Add(-14*time.Second)),
			followerStep{retryAt: t0.Add(time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decideFollower(t0, "me", tt.view, fallback)
			if got != tt.want {
				t.Errorf("decideFollower() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestReachedReadsBothClocks(t *testing.T) {
	now := time.Now()
	deadline := now.Add(time.Second)
	if reached(now, deadline) || !reached(deadline, deadline) || !reached(deadline.Add(1), deadline) {
		t.Errorf("reached does not compare monotonic readings")
	}
	// Without monotonic readings (a fake clock, or a time read back from an API
	// object) the wall clock decides alone.
	if reached(now.Round(0), deadline.Round(0)) || !reached(deadline.Round(0).Add(time.Hour), deadline) {
		t.Errorf("reached does not compare wall readings")
	}
}
