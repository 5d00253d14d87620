package e2e

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/leaserecord"
)

// The scenario that handed one epoch to two terms: the holder is killed, someone
// runs `kubectl delete lease`, and a freshly started manager — which never saw the
// old Lease — becomes the candidate. It must create the Lease above the epoch the
// group's status recorded, and only once the killed holder's term must have ended.
func TestDeletedLeaseKeepsTheEpochGrowing(t *testing.T) {
	c := newCluster(t)
	a := c.startManager("manager-a", false)
	c.group("payments")
	g := c.waitFor("payments", 10*time.Second, "held by manager-a", heldBy("manager-a"))
	recorded := g.Status.Transitions
	lease := types.NamespacedName{Namespace: c.namespace, Name: "payments"}

	a.kill(t)
	if out, err := runKubectl(t, cp.Kubeconfig, "", "delete", "lease", "-n", c.namespace, "payments"); err != nil {
		t.Fatalf("kubectl delete lease: %v\n%s", err, out)
	}
	started := time.Now()
	c.startManager("manager-b", false)
	waitForLeaseHolder(t, lease, "manager-b", 2*leaseDuration+10*time.Second)
	l := getLease(t, lease)
	if leaserecord.Epoch(l) <= recorded {
		t.Errorf("the re-created Lease is at epoch %d, not above the %d the group recorded", leaserecord.Epoch(l), recorded)
	}
	if waited := l.Spec.AcquireTime.Sub(started); waited < leaseDuration-100*time.Millisecond {
		t.Errorf("manager-b re-created the Lease %s after it started, before leaseDuration %s: the killed holder could still lead", waited, leaseDuration)
	}
	g = c.waitFor("payments", 10*time.Second, "manager-b's term recorded", heldBy("manager-b"))
	for i := 1; i < len(g.Status.History); i++ {
		if g.Status.History[i].Transition >= g.Status.History[i-1].Transition {
			t.Errorf("history goes back in epochs: %s", describeHistory(g))
		}
	}
	if g.Status.History[0].StartReason != v1alpha1.StartElected || g.Status.Transitions != leaserecord.Epoch(l) {
		t.Errorf("status %s, history %s: want manager-b Elected at epoch %d", statusString(g), describeHistory(g), leaserecord.Epoch(l))
	}
}
