package e2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/testutil"
)

func external(g *v1alpha1.LeaderGroup) { g.Spec.Candidates.Source = v1alpha1.SourceExternal }

func condition(g *v1alpha1.LeaderGroup, typ string) metav1.Condition {
	if c := meta.FindStatusCondition(g.Status.Conditions, typ); c != nil {
		return *c
	}
	return metav1.Condition{}
}

func readyBecause(reason string) func(*v1alpha1.LeaderGroup) bool {
	return func(g *v1alpha1.LeaderGroup) bool {
		c := condition(g, v1alpha1.ConditionReady)
		return c.Reason == reason && c.ObservedGeneration == g.Generation
	}
}

// startClientGo runs client-go's leader-election example on the group's Lease.
func startClientGo(t *testing.T, id, namespace, lease string) *testutil.Process {
	t.Helper()
	return testutil.StartProcess(t, id, clientGoElector, "--kubeconfig", cp.Kubeconfig, "--id", id,
		"--lease-name", lease, "--lease-namespace", namespace)
}

// External: plain client-go competes; the manager observes and infers how terms
// ended from what it sees: an empty holder is a release, silence an expiry.
func TestExternalGroupRecordsClientGo(t *testing.T) {
	c := newCluster(t)
	c.startManager("observer", false)
	c.group("ext", external)

	first := startClientGo(t, "x-1", c.namespace, "ext")
	g := c.waitFor("ext", 10*time.Second, "held by x-1", heldBy("x-1"))
	if g.Status.Candidates != nil || g.Status.History[0].StartReason != v1alpha1.StartElected {
		t.Errorf("status %s: want no candidates and x-1 Elected", statusString(g))
	}
	if err := first.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	first.Wait(t, 10*time.Second)
	c.waitFor("ext", 10*time.Second, "x-1's release recorded", func(g *v1alpha1.LeaderGroup) bool {
		return g.Status.Holder == "" && g.Status.History[0].EndReason == v1alpha1.EndReleased
	})

	second := startClientGo(t, "x-2", c.namespace, "ext")
	g = c.waitFor("ext", 10*time.Second, "held by x-2", heldBy("x-2"))
	if e := g.Status.History[0]; e.StartReason != v1alpha1.StartAfterRelease || e.LeaderlessFor == nil {
		t.Errorf("history %s: want x-2 AfterRelease with a leaderless gap", describeHistory(g))
	}
	if err := second.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	g = c.waitFor("ext", leaseDuration+5*time.Second, "x-2's expiry recorded", func(g *v1alpha1.LeaderGroup) bool {
		return g.Status.History[0].EndReason == v1alpha1.EndExpired
	})
	if cond := condition(g, v1alpha1.ConditionLeaderElected); cond.Status != metav1.ConditionFalse || cond.Reason != v1alpha1.ReasonLeaseExpired {
		t.Errorf("LeaderElected is %s/%s, want False/LeaseExpired", cond.Status, cond.Reason)
	}
	if g.Status.Holder != "" {
		t.Errorf("an expired holder is still shown: %q", g.Status.Holder)
	}
	waitForEvent(t, c.namespace, "ext", corev1.EventTypeWarning, "LeaseExpired")
	waitForEvent(t, c.namespace, "ext", corev1.EventTypeNormal, "LeaderElected")
	waitForEvent(t, c.namespace, "ext", corev1.EventTypeNormal, "LeaderLost")
}

func TestGroupLifecycle(t *testing.T) {
	t.Run("changed timings keep holder and epoch", func(t *testing.T) {
		c := newCluster(t)
		c.startManager("manager-a", false)
		c.group("payments")
		before := c.waitFor("payments", 10*time.Second, "held by manager-a", heldBy("manager-a"))
		patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"leaseDuration":"8s"}}`))
		if err := k8s.Patch(context.Background(), before.DeepCopy(), patch); err != nil {
			t.Fatal(err)
		}
		key := types.NamespacedName{Namespace: c.namespace, Name: "payments"}
		pollLease(t, key, 10*time.Second, "renewed with the new leaseDuration", func(l *leaseView) bool { return l.seconds == 8 })
		after := c.waitFor("payments", 10*time.Second, "the new generation observed", func(g *v1alpha1.LeaderGroup) bool {
			return g.Status.ObservedGeneration == g.Generation
		})
		if after.Status.Holder != "manager-a" || after.Status.Transitions != before.Status.Transitions || len(after.Status.History) != 1 {
			t.Errorf("after the change: %s; before: %s", statusString(after), statusString(before))
		}
	})

	t.Run("delete removes the manager's Lease and keeps others'", func(t *testing.T) {
		c := newCluster(t)
		c.startManager("manager-a", false)
		c.group("payments")
		c.group("ext", external)
		c.waitFor("payments", 10*time.Second, "held by manager-a", heldBy("manager-a"))
		startClientGo(t, "x-1", c.namespace, "ext")
		c.waitFor("ext", 10*time.Second, "held by x-1", heldBy("x-1"))
		for _, name := range []string{"payments", "ext"} {
			g := &v1alpha1.LeaderGroup{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.namespace}}
			if err := k8s.Delete(context.Background(), g); err != nil {
				t.Fatal(err)
			}
		}
		pollLease(t, types.NamespacedName{Namespace: c.namespace, Name: "payments"}, 20*time.Second, "gone", func(l *leaseView) bool { return l == nil })
		if l := getLease(t, types.NamespacedName{Namespace: c.namespace, Name: "ext"}); ptr.Deref(l.Spec.HolderIdentity, "") != "x-1" {
			t.Errorf("the External Lease changed: %+v", l.Spec)
		}
	})

	t.Run("suspend releases, resume elects again", func(t *testing.T) {
		c := newCluster(t)
		c.startManager("manager-a", false)
		g := c.group("payments")
		g = c.waitFor("payments", 10*time.Second, "held by manager-a", heldBy("manager-a"))
		setSuspend(t, g, true)
		g = c.waitFor("payments", 10*time.Second, "suspended and released", func(g *v1alpha1.LeaderGroup) bool {
			return readyBecause(v1alpha1.ReasonSuspended)(g) && g.Status.Holder == "" &&
				g.Status.History[0].EndReason == v1alpha1.EndReleased
		})
		setSuspend(t, g, false)
		c.waitFor("payments", 10*time.Second, "held again", func(g *v1alpha1.LeaderGroup) bool {
			return heldBy("manager-a")(g) && readyBecause(v1alpha1.ReasonReconciled)(g) && len(g.Status.History) == 2
		})
	})

	t.Run("the later of two groups on one Lease conflicts and runs nothing", func(t *testing.T) {
		c := newCluster(t)
		c.startManager("manager-a", false)
		c.group("first")
		c.waitFor("first", 10*time.Second, "held by manager-a", heldBy("manager-a"))
		c.group("second", func(g *v1alpha1.LeaderGroup) { g.Spec.Lease = &v1alpha1.LeaseReference{Name: "first"} })
		g := c.waitFor("second", 10*time.Second, "Conflict", readyBecause(v1alpha1.ReasonConflict))
		if !strings.Contains(condition(g, v1alpha1.ConditionReady).Message, "first") || g.Status.Holder != "" {
			t.Errorf("status %s: want a Conflict naming the first group, no holder", statusString(g))
		}
		waitForEvent(t, c.namespace, "second", corev1.EventTypeWarning, "Conflict")
		if held := c.waitFor("first", time.Second, "still held", heldBy("manager-a")); held.Status.Transitions != g.Status.Transitions && len(held.Status.History) != 1 {
			t.Errorf("the first group's election was disturbed: %s", describeHistory(held))
		}
	})

	t.Run("a Lease in another namespace only for allowed External groups", func(t *testing.T) {
		c := newCluster(t)
		other := newCluster(t).namespace
		c.startManager("manager-a", false, "--external-lease-namespaces", other)
		elsewhere := func(g *v1alpha1.LeaderGroup) {
			g.Spec.Lease = &v1alpha1.LeaseReference{Name: "shared", Namespace: other}
		}
		c.group("manager-elsewhere", elsewhere)
		c.group("external-elsewhere", external, elsewhere)
		c.group("external-kube-system", external, func(g *v1alpha1.LeaderGroup) {
			g.Spec.Lease = &v1alpha1.LeaseReference{Name: "kube-scheduler", Namespace: "kube-system"}
		})
		c.waitFor("manager-elsewhere", 10*time.Second, "refused", readyBecause(v1alpha1.ReasonLeaseNamespaceNotAllowed))
		c.waitFor("external-kube-system", 10*time.Second, "refused", readyBecause(v1alpha1.ReasonLeaseNamespaceNotAllowed))
		c.waitFor("external-elsewhere", 10*time.Second, "served", readyBecause(v1alpha1.ReasonReconciled))
		startClientGo(t, "x-1", other, "shared")
		g := c.waitFor("external-elsewhere", 10*time.Second, "held by x-1", heldBy("x-1"))
		if g.Status.Lease != other+"/shared" {
			t.Errorf("status.lease %q, want %s/shared", g.Status.Lease, other)
		}
	})

	t.Run("a group named longer than a label value is led, and its Lease goes with it", func(t *testing.T) {
		c := newCluster(t)
		c.startManager("manager-a", false)
		name := "payments-" + strings.Repeat("x", 64) // 73 characters: a valid name, too long for a label
		c.group(name)
		c.waitFor(name, 10*time.Second, "held by manager-a", heldBy("manager-a"))
		g := &v1alpha1.LeaderGroup{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.namespace}}
		if err := k8s.Delete(context.Background(), g); err != nil {
			t.Fatal(err)
		}
		pollLease(t, types.NamespacedName{Namespace: c.namespace, Name: name}, 20*time.Second, "gone", func(l *leaseView) bool { return l == nil })
	})
}

func TestFiftyGroupsTwoManagers(t *testing.T) {
	c := newCluster(t)
	c.startManager("manager-a", false)
	c.startManager("manager-b", false)
	created := time.Now()
	for i := range 50 {
		c.group(fmt.Sprintf("group-%02d", i))
	}
	spread := map[string]int{}
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 10*time.Second, true,
		func(ctx context.Context) (bool, error) {
			var groups v1alpha1.LeaderGroupList
			if err := k8s.List(ctx, &groups, client.InNamespace(c.namespace)); err != nil {
				return false, err
			}
			spread = map[string]int{}
			for _, g := range groups.Items {
				if g.Status.Holder != "" {
					spread[g.Status.Holder]++
				}
			}
			return spread["manager-a"]+spread["manager-b"] == 50, nil
		})
	if err != nil {
		t.Fatalf("not every group had a holder within 10s: %v", spread)
	}
	ids := []string{}
	for id := range spread {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		t.Logf("%s holds %d of 50 groups", id, spread[id])
	}
	t.Logf("50 groups held %s after creation", time.Since(created).Round(time.Millisecond))
}

func setSuspend(t *testing.T, g *v1alpha1.LeaderGroup, suspend bool) {
	t.Helper()
	patch := client.RawPatch(types.MergePatchType, []byte(fmt.Sprintf(`{"spec":{"suspend":%t}}`, suspend)))
	if err := k8s.Patch(context.Background(), g, patch); err != nil {
		t.Fatal(err)
	}
}

// leaseView is what tests read of a Lease; nil when it does not exist.
type leaseView struct {
	holder  string
	epoch   int32
	seconds int32
}

func pollLease(t *testing.T, key types.NamespacedName, timeout time.Duration, what string, cond func(*leaseView) bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, timeout, true,
		func(ctx context.Context) (bool, error) {
			l, err := clientset.CoordinationV1().Leases(key.Namespace).Get(ctx, key.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return cond(nil), nil
			}
			if err != nil {
				return false, nil
			}
			return cond(&leaseView{holder: ptr.Deref(l.Spec.HolderIdentity, ""), epoch: ptr.Deref(l.Spec.LeaseTransitions, 0),
				seconds: ptr.Deref(l.Spec.LeaseDurationSeconds, 0)}), nil
		})
	if err != nil {
		t.Fatalf("Lease %s: not %s within %s", key, what, timeout)
	}
}

// waitForEvent polls until the group has an Event of the type and reason.
func waitForEvent(t *testing.T, namespace, group, eventType, reason string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 10*time.Second, true,
		func(ctx context.Context) (bool, error) {
			events, err := clientset.EventsV1().Events(namespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, nil
			}
			return hasEvent(events.Items, group, eventType, reason), nil
		})
	if err != nil {
		t.Errorf("no %s Event %s on LeaderGroup %s", eventType, reason, group)
	}
}

func hasEvent(events []eventsv1.Event, group, eventType, reason string) bool {
	for _, e := range events {
		if e.Regarding.Kind == "LeaderGroup" && e.Regarding.Name == group && e.Type == eventType && e.Reason == reason {
			return true
		}
	}
	return false
}
