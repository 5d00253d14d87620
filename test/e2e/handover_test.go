package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/election-manager/election-manager/api/v1alpha1"
)

func (c *cluster) prefer(name, holder string) {
	c.t.Helper()
	g := &v1alpha1.LeaderGroup{}
	g.Name, g.Namespace = name, c.namespace
	patch := client.RawPatch(types.MergePatchType, []byte(fmt.Sprintf(`{"spec":{"preferredHolder":%q}}`, holder)))
	if err := k8s.Patch(context.Background(), g, patch); err != nil {
		c.t.Fatal(err)
	}
}

// Manager source: the holder hands over to the preferred follower at once; history
// says Handover; the leading intervals never overlap (the safety checker).
func TestHandoverBetweenManagers(t *testing.T) {
	c := newCluster(t)
	c.heldWithFollower(false)

	asked := time.Now()
	c.prefer("payments", "manager-b")
	waitForLeaseHolder(t, types.NamespacedName{Namespace: c.namespace, Name: "payments"}, "manager-b", 5*time.Second)
	if took := time.Since(asked); took > time.Second {
		t.Errorf("manager-b led %s after the handover was asked, want within 1s", took)
	}
	g := c.waitFor("payments", 5*time.Second, "the handover recorded", func(g *v1alpha1.LeaderGroup) bool {
		return len(g.Status.History) == 2 && condition(g, v1alpha1.ConditionPreferredHolder).Reason == v1alpha1.ReasonHonoured
	})
	h := g.Status.History
	if h[0].Holder != "manager-b" || h[0].StartReason != v1alpha1.StartHandover || h[1].EndReason != v1alpha1.EndHandover {
		t.Errorf("history %s, want manager-b Handover after manager-a Handover", describeHistory(g))
	}

	// The preference stays: when manager-b stops, the election goes on as usual...
	b := c.managers[1]
	b.terminate(t)
	c.waitFor("payments", 10*time.Second, "manager-a holds while manager-b is away", func(g *v1alpha1.LeaderGroup) bool {
		return heldBy("manager-a")(g) && condition(g, v1alpha1.ConditionPreferredHolder).Reason == v1alpha1.ReasonNotACandidate
	})
	// ...and when it comes back, leadership returns to it.
	c.startManager("manager-b", false)
	g = c.waitFor("payments", 2*leaseDuration, "leadership back with manager-b", func(g *v1alpha1.LeaderGroup) bool {
		return heldBy("manager-b")(g) && condition(g, v1alpha1.ConditionPreferredHolder).Reason == v1alpha1.ReasonHonoured
	})
	if g.Status.History[0].StartReason != v1alpha1.StartHandover {
		t.Errorf("history %s: want manager-b back by Handover", describeHistory(g))
	}
}

// Pods source: the label moves to the named Ready pod at once, never on two pods.
func TestHandoverToAPod(t *testing.T) {
	c := newCluster(t)
	labels, g := c.threeReadyPodsElected()
	to := map[string]string{"web-a": "web-c", "web-b": "web-c", "web-c": "web-a"}[g.Status.Holder]

	asked := time.Now()
	c.prefer("web", to)
	if name, _ := labels.waitForLabel(t, g.Status.Holder, 5*time.Second); name != to {
		t.Errorf("the label moved to %s, want %s", name, to)
	}
	if took := time.Since(asked); took > time.Second {
		t.Errorf("the label moved %s after the handover was asked, want within 1s", took)
	}
	g = c.waitFor("web", 5*time.Second, "the handover recorded", heldBy(to))
	if h := g.Status.History; h[0].StartReason != v1alpha1.StartHandover || h[1].EndReason != v1alpha1.EndHandover {
		t.Errorf("history %s, want Handover", describeHistory(g))
	}
	labels.requireNeverTwo(t)
}

// A preferred identity that is not a live candidate moves nothing, and the condition
// says why.
func TestHandoverToANonCandidate(t *testing.T) {
	c := newCluster(t)
	c.startManager("manager-a", false)
	c.group("payments")
	before := c.waitFor("payments", 10*time.Second, "held by manager-a", heldBy("manager-a"))
	c.prefer("payments", "nobody")
	g := c.waitFor("payments", 5*time.Second, "the condition says why", func(g *v1alpha1.LeaderGroup) bool {
		return condition(g, v1alpha1.ConditionPreferredHolder).Reason == v1alpha1.ReasonNotACandidate
	})
	if msg := condition(g, v1alpha1.ConditionPreferredHolder).Message; !strings.Contains(msg, "nobody is not a live candidate") {
		t.Errorf("condition message %q", msg)
	}
	if g.Status.Holder != "manager-a" || g.Status.Transitions != before.Status.Transitions {
		t.Errorf("leadership moved: %s", statusString(g))
	}
}
