package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/election-manager/election-manager/api/v1alpha1"
)

// foreignHolder is another controller holding a Lease the way client-go does,
// renewing it every second, with a clock a minute behind the manager's: only the
// observer's own clock may tell when it expires.
type foreignHolder struct {
	stop func()
	done sync.WaitGroup
	// last is when its last successful write was sent.
	last time.Time
}

const foreignDuration = 3 * time.Second

func holdForeign(t *testing.T, key types.NamespacedName, identity string) *foreignHolder {
	t.Helper()
	skewed := func() *metav1.MicroTime { return ptr.To(metav1.NewMicroTime(time.Now().Add(-time.Minute))) }
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &identity, LeaseDurationSeconds: ptr.To(int32(foreignDuration / time.Second)),
			AcquireTime: skewed(), RenewTime: skewed(), LeaseTransitions: ptr.To(int32(7))}}
	if _, err := clientset.CoordinationV1().Leases(key.Namespace).Create(context.Background(), l, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &foreignHolder{stop: cancel, last: time.Now()}
	f.done.Add(1)
	go func() {
		defer f.done.Done()
		_ = wait.PollUntilContextCancel(ctx, time.Second, false, func(ctx context.Context) (bool, error) {
			cur, err := clientset.CoordinationV1().Leases(key.Namespace).Get(ctx, key.Name, metav1.GetOptions{})
			if err != nil || ptr.Deref(cur.Spec.HolderIdentity, "") != identity {
				return false, nil
			}
			cur.Spec.RenewTime = skewed()
			sent := time.Now()
			if _, err := clientset.CoordinationV1().Leases(key.Namespace).Update(ctx, cur, metav1.UpdateOptions{}); err == nil {
				f.last = sent
			}
			return false, nil
		})
	}()
	t.Cleanup(func() { f.end() })
	return f
}

// end stops renewing and returns when the last successful renewal was sent.
func (f *foreignHolder) end() time.Time {
	f.stop()
	f.done.Wait()
	return f.last
}

// A Pods group whose Lease another controller holds leaves it alone while that
// holder renews, and takes it over as any candidate would once it expires on the
// manager's clock; no pod is labelled before.
func TestPodsNeverTakeAForeignLease(t *testing.T) {
	c := newCluster(t)
	labels := c.watchLabels()
	c.pod("web-a", true)
	c.pod("web-b", true)
	key := types.NamespacedName{Namespace: c.namespace, Name: "web"}
	foreign := holdForeign(t, key, "other-controller")
	c.podsManager()
	c.group("web", podsGroup)
	c.waitFor("web", 10*time.Second, "the candidates listed", func(g *v1alpha1.LeaderGroup) bool { return len(g.Status.Candidates) == 2 })

	// Two of the foreign record's durations, while it renews: nothing may move.
	deadline := time.Now().Add(2 * foreignDuration)
	for time.Now().Before(deadline) {
		if h := ptr.Deref(getLease(t, key).Spec.HolderIdentity, ""); h != "other-controller" {
			t.Fatalf("the Lease was taken from its foreign holder: held by %q", h)
		}
		if name, _, n := labels.leader(); n > 0 {
			t.Fatalf("%d pod(s) labelled (%s) while a foreign holder holds the Lease", n, name)
		}
		time.Sleep(100 * time.Millisecond) // watching that nothing happens
	}

	lastRenewal := foreign.end()
	g := c.waitFor("web", foreignDuration+5*time.Second, "a pod elected after the expiry", heldByAnyoneBut("other-controller"))
	if took := time.Since(lastRenewal); took < foreignDuration {
		t.Errorf("taken over %s after the last renewal, before the record's %s had passed", took, foreignDuration)
	}
	if h := g.Status.History; len(h) == 0 || h[0].StartReason != v1alpha1.StartAfterExpiry || h[0].Transition != 8 {
		t.Errorf("history %s, want the pod's term AfterExpiry at epoch 8", describeHistory(g))
	}
	if name, _ := labels.waitForLabel(t, "", 5*time.Second); name != g.Status.Holder {
		t.Errorf("labelled %s, holder %s", name, g.Status.Holder)
	}
	labels.requireNeverTwo(t)
}

// The manager's own lock is never a group's Lease: the group is refused and the lock
// stays with the manager.
func TestPodsRefuseTheManagersLock(t *testing.T) {
	c := newCluster(t)
	c.pod("web-a", true)
	m := c.podsManager()
	m.WaitForOutput(t, "Became the status writer", 10*time.Second)
	c.group("web", podsGroup, func(g *v1alpha1.LeaderGroup) { g.Spec.Lease = &v1alpha1.LeaseReference{Name: c.lockName} })
	c.waitFor("web", 10*time.Second, "LeaseReserved", readyBecause(v1alpha1.ReasonLeaseReserved))
	if h := ptr.Deref(getLease(t, types.NamespacedName{Namespace: c.namespace, Name: c.lockName}).Spec.HolderIdentity, ""); h != m.id {
		t.Errorf("the manager's lock is held by %q, want %s", h, m.id)
	}
}
