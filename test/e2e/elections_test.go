package e2e

import (
	"context"
	"regexp"
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/testutil"
)

// The client-go leader-election example, as a LeaderGroup: managers compete, the
// holder stops, another takes over, and the status tells the story. Bounds carry
// slack: they check behaviour, not speed.

func candidates(g *v1alpha1.LeaderGroup) []string {
	var ids []string
	for _, c := range g.Status.Candidates {
		ids = append(ids, c.Identity)
	}
	return ids
}

func hasCandidates(ids ...string) func(*v1alpha1.LeaderGroup) bool {
	return func(g *v1alpha1.LeaderGroup) bool { return slices.Equal(candidates(g), ids) }
}

func TestTwoManagersElectOneHolder(t *testing.T) {
	c := newCluster(t)
	c.startManager("manager-a", false)
	c.startManager("manager-b", false)
	created := time.Now()
	c.group("payments")
	g := c.waitFor("payments", 10*time.Second, "a holder", func(g *v1alpha1.LeaderGroup) bool { return g.Status.Holder != "" })
	if took := time.Since(created); took > 3*time.Second {
		t.Errorf("a holder after %s, want within 3s", took)
	}
	c.waitFor("payments", 2*leaseDuration, "both candidates listed", hasCandidates("manager-a", "manager-b"))

	out, err := runKubectl(t, cp.Kubeconfig, "", "get", "lg", "-n", c.namespace)
	if err != nil {
		t.Fatal(err, out)
	}
	if !regexp.MustCompile(`(?m)^payments\s+` + g.Status.Holder + `\s+\S+\s+\d+\s+Manager\s+True\s`).MatchString(out) {
		t.Errorf("kubectl get lg does not show the holder %s and Ready:\n%s", g.Status.Holder, out)
	}
}

// SIGTERM: the holder releases, the other takes over within a couple of retry
// periods, and the history says Released / AfterRelease.
func TestTerminatedHolderHandsOver(t *testing.T) {
	t.Run("holder writes status", func(t *testing.T) {
		c := newCluster(t)
		a := c.heldWithFollower(false)
		a.WaitForOutput(t, "Became the status writer", 10*time.Second)
		requireHandover(t, c, a, "manager-b")
	})
	t.Run("holder does not write status", func(t *testing.T) {
		c := newCluster(t)
		// The writer serves the group only once it carries the label, so the other
		// manager becomes its holder first.
		w := c.startManager("manager-w", false, "--group-selector", "team=payments")
		w.WaitForOutput(t, "Became the status writer", 10*time.Second)
		h := c.startManager("manager-h", false)
		c.group("payments")
		lease := types.NamespacedName{Namespace: c.namespace, Name: "payments"}
		waitForLeaseHolder(t, lease, "manager-h", 10*time.Second)
		g := &v1alpha1.LeaderGroup{}
		if err := k8s.Get(context.Background(), lease, g); err != nil {
			t.Fatal(err)
		}
		if err := k8s.Patch(context.Background(), g, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"team":"payments"}}}`))); err != nil {
			t.Fatal(err)
		}
		c.waitFor("payments", 2*leaseDuration, "held by manager-h, both candidates listed", func(g *v1alpha1.LeaderGroup) bool {
			return heldBy("manager-h")(g) && hasCandidates("manager-h", "manager-w")(g)
		})
		requireHandover(t, c, h, "manager-w")
	})
}

func requireHandover(t *testing.T, c *cluster, holder *manager, next string) {
	t.Helper()
	stopped := time.Now()
	holder.terminate(t)
	lease := types.NamespacedName{Namespace: c.namespace, Name: "payments"}
	waitForLeaseHolder(t, lease, next, 10*time.Second)
	if took, bound := time.Since(stopped), 22*retryPeriod/10+time.Second; took > bound {
		t.Errorf("%s held the lease %s after SIGTERM, want within %s", next, took, bound)
	}
	g := c.waitFor("payments", 10*time.Second, "the handover recorded", func(g *v1alpha1.LeaderGroup) bool {
		return g.Status.Holder == next && len(g.Status.History) >= 2
	})
	h := g.Status.History
	if h[0].Holder != next || h[0].StartReason != v1alpha1.StartAfterRelease ||
		h[1].Holder != holder.id || h[1].EndReason != v1alpha1.EndReleased {
		t.Errorf("history %s, want %s AfterRelease after %s Released", describeHistory(g), next, holder.id)
	}
	if h[0].Transition <= h[1].Transition {
		t.Errorf("epoch did not grow: %s", describeHistory(g))
	}
}

// SIGKILL: nobody releases; the other takes over once leaseDuration has passed on
// its clock since it last saw a renewal, and the history says Expired / AfterExpiry.
func TestKilledHolderExpires(t *testing.T) {
	c := newCluster(t)
	a := c.heldWithFollower(false)

	lease := types.NamespacedName{Namespace: c.namespace, Name: "payments"}
	a.kill(t)
	lastRenewal := getLease(t, lease).Spec.RenewTime.Time
	waitForLeaseHolder(t, lease, "manager-b", leaseDuration+10*time.Second)
	took := time.Since(lastRenewal)
	if took < leaseDuration-100*time.Millisecond {
		t.Errorf("manager-b took over %s after the last renewal, before leaseDuration %s", took, leaseDuration)
	}
	if bound := leaseDuration + 44*retryPeriod/10 + time.Second; took > bound {
		t.Errorf("manager-b took over %s after the last renewal, want within %s", took, bound)
	}
	g := c.waitFor("payments", 10*time.Second, "the takeover recorded", func(g *v1alpha1.LeaderGroup) bool {
		return g.Status.Holder == "manager-b" && len(g.Status.History) >= 2
	})
	h := g.Status.History
	if h[0].StartReason != v1alpha1.StartAfterExpiry || h[1].Holder != "manager-a" || h[1].EndReason != v1alpha1.EndExpired {
		t.Errorf("history %s, want manager-b AfterExpiry after manager-a Expired", describeHistory(g))
	}
}

// A holder cut off from the API server stops leading within renewDeadline of its last
// renewal; another takes over; when the connection comes back the new holder stays
// and the old one rejoins as a follower, without exiting.
func TestCutHolderStepsDownAndRejoins(t *testing.T) {
	for _, mode := range []testutil.ProxyMode{testutil.Refuse, testutil.Blackhole} {
		t.Run(mode.String(), func(t *testing.T) {
			c := newCluster(t)
			a := c.heldWithFollower(true)

			lease := types.NamespacedName{Namespace: c.namespace, Name: "payments"}
			renewals := watchRenewals(t, lease)
			a.proxy.SetMode(mode)
			waitForLeaseHolder(t, lease, "manager-b", leaseDuration+10*time.Second)
			l := getLease(t, lease)
			epochB := *l.Spec.LeaseTransitions

			// The send time of manager-a's last successful renewal, as it wrote it.
			lastRenewal := renewals.lastOf("manager-a")
			ivs := a.intervals(t)
			last := ivs[len(ivs)-1]
			if last.end.IsZero() {
				t.Fatalf("manager-a still says it leads after manager-b took over")
			}
			if bound := lastRenewal.Add(renewDeadline + time.Second); last.end.After(bound) {
				t.Errorf("manager-a stopped leading %s after its last renewal, want within renewDeadline + 1s",
					last.end.Sub(lastRenewal))
			}
			// The Lease may show manager-b before its log does.
			var bIvs []interval
			poll(t, 10*time.Second, "manager-b's log to say it leads", func() bool {
				bIvs = c.managers[1].intervals(t)
				return len(bIvs) > 0
			})
			if took := bIvs[len(bIvs)-1].start.Sub(lastRenewal); took < leaseDuration-100*time.Millisecond {
				t.Errorf("manager-b took over %s after manager-a's last renewal, before leaseDuration %s", took, leaseDuration)
			}

			a.proxy.SetMode(testutil.Pass)
			c.waitFor("payments", 3*leaseDuration, "manager-a back among the candidates", hasCandidates("manager-a", "manager-b"))
			l = getLease(t, lease)
			if holder := *l.Spec.HolderIdentity; holder != "manager-b" || *l.Spec.LeaseTransitions != epochB {
				t.Errorf("after reconnecting, the lease is held by %s at epoch %d; want manager-b at %d",
					holder, *l.Spec.LeaseTransitions, epochB)
			}
			if a.Exited() {
				t.Errorf("manager-a exited")
			}
		})
	}
}
