package election

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/election-manager/election-manager/internal/leaserecord"
)

// Expiry is measured on the follower's own clock, which the informer (its Lease
// tracker) and the elector share: with a fake clock, a Lease whose holder never
// renews is taken over exactly when the clock reaches leaseDuration after the
// record was first seen, and not a millisecond before, whatever real time passes.
func TestFollowerTakesOverAtExpiryOnItsInjectedClock(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "lock"}
	now := metav1.NewMicroTime(time.Now())
	if _, err := admin.CoordinationV1().Leases(ns).Create(context.Background(), &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: ns},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("x"), LeaseDurationSeconds: ptr.To[int32](15),
			AcquireTime: &now, RenewTime: &now, LeaseTransitions: ptr.To[int32](4)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	clk := clocktesting.NewFakeClock(time.Now())
	client := kubernetes.NewForConfigOrDie(unthrottled(controlPlane.Config))
	leases, err := NewLeaseInformer(client, clk, ns)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	leases.Start(ctx)
	started := make(chan int32, 1)
	cfg := Config{Lease: key, Identity: "b", LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}
	e, err := New(cfg, client.CoordinationV1(), leases, Callbacks{OnStartedLeading: func(epoch int32) { started <- epoch }}, Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	e.Start(ctx)
	defer e.Stop()
	eventually(t, 10*time.Second, "b to see x holding the Lease and wait on its clock", func() bool {
		return e.Leader().Holder == "x" && clk.HasWaiters()
	})

	clk.Step(cfg.LeaseDuration - time.Millisecond)
	eventually(t, 5*time.Second, "b's timer armed again", clk.HasWaiters)
	if cur, err := admin.CoordinationV1().Leases(ns).Get(ctx, key.Name, metav1.GetOptions{}); err != nil || leaserecord.Holder(cur) != "x" {
		t.Fatalf("a millisecond before expiry the Lease is %v (%v), want still x's", leaserecord.Holder(cur), err)
	}
	select {
	case epoch := <-started:
		t.Fatalf("b started leading (epoch %d) before x's lease expired on its clock", epoch)
	default:
	}

	// At expiry. HasWaiters cannot tell whether b's loop re-armed its timer before or
	// after the step (a timer armed after it, from the time read before it, waits a
	// millisecond more), so the clock goes on a millisecond at a time, a few times.
	expiry := clk.Now().Add(time.Millisecond)
	var epoch int32
	for took := false; !took; {
		clk.Step(time.Millisecond)
		select {
		case epoch = <-started:
			took = true
		case <-time.After(2 * time.Second):
			if late := clk.Now().Sub(expiry); late >= 5*time.Millisecond {
				t.Fatalf("b did not take over when x's lease expired on its clock (now %s past expiry)", late)
			}
		}
	}
	if epoch != 5 {
		t.Errorf("b leads at epoch %d, want 5", epoch)
	}
	cur, err := admin.CoordinationV1().Leases(ns).Get(ctx, key.Name, metav1.GetOptions{})
	if err != nil || leaserecord.Holder(cur) != "b" || leaserecord.Start(cur) != "AfterExpiry" {
		t.Errorf("after the takeover the Lease is held by %q (%s), want b AfterExpiry (%v)", leaserecord.Holder(cur), leaserecord.Start(cur), err)
	}
	if !cur.Spec.AcquireTime.Time.Equal(clk.Now().Truncate(time.Microsecond)) {
		t.Errorf("acquireTime %s, want the injected clock's %s", cur.Spec.AcquireTime.Time, clk.Now())
	}
}
