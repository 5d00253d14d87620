package e2e

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/testutil"
)

// randomOps is how many operations TestPodsLabelNeverOnTwoPods runs.
const randomOps = 80

// chaos is the state of the randomized test: the pods it made, the group's selector,
// and the managers, one of which writes status.
type chaos struct {
	*cluster
	rnd        *rand.Rand
	pods       []string // live pods
	next       int      // the next pod's number
	live       []*manager
	partitions int
	healAt     map[*manager]time.Time // partitioned managers and when to heal them
	suspended  bool
	counts     map[string]int
}

// The leader label is never on two pods of one group, whatever happens in between:
// readiness flips, deletions, pods leaving the selector (relabelled, or the selector
// edited), suspension, and status-writer failovers (SIGTERM, SIGKILL, and a writer
// cut off from the API server that comes back after its successor took over). At
// the end exactly one pod is labelled, the one the Lease names at its epoch, or none
// when no selected pod is Ready; and once the group is deleted, none.
// SEED=<n> replays a run.
func TestPodsLabelNeverOnTwoPods(t *testing.T) {
	seed := time.Now().UnixNano()
	if s := os.Getenv("SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatalf("SEED=%q: %v", s, err)
		}
	}
	t.Logf("seed %d (replay with SEED=%d)", seed, seed)
	c := &chaos{cluster: newCluster(t), rnd: rand.New(rand.NewSource(seed)), healAt: map[*manager]time.Time{}, counts: map[string]int{}}
	labels := c.watchLabels()
	for range 4 {
		c.newPod()
	}
	c.live = []*manager{c.proxiedPodsManager(), c.proxiedPodsManager()}
	c.group("web", func(g *v1alpha1.LeaderGroup) {
		g.Spec.Candidates = v1alpha1.Candidates{Source: v1alpha1.SourcePods, PodSelector: c.selector(0)}
	})
	c.waitFor("web", 15*time.Second, "observed", func(g *v1alpha1.LeaderGroup) bool { return g.Status.ObservedGeneration > 0 })

	start := time.Now()
	for range randomOps {
		c.healDue()
		c.step(labels)
		// A pause of 0 to 300ms: some operations land mid-switch, some after it.
		time.Sleep(time.Duration(c.rnd.Intn(300)) * time.Millisecond)
	}
	for m := range c.healAt {
		m.proxy.SetMode(testutil.Pass)
	}
	if c.suspended {
		c.editGroup(func(g *v1alpha1.LeaderGroup) { g.Spec.Suspend = false })
	}
	t.Logf("%d operations in %s: %v; the watch saw %d pod events", randomOps, time.Since(start).Round(time.Millisecond), c.counts, labels.seen())

	c.waitSettled(labels)
	labels.requireNeverTwo(t)

	if err := k8s.Delete(context.Background(), &v1alpha1.LeaderGroup{ObjectMeta: metav1.ObjectMeta{Namespace: c.namespace, Name: "web"}}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		_, _, n := labels.leader()
		return n == 0, nil
	})
	if err != nil {
		_, _, n := labels.leader()
		t.Errorf("%d pod(s) still labelled 10s after the group was deleted", n)
	}
	labels.requireNeverTwo(t)
}

func (c *chaos) proxiedPodsManager() *manager {
	return c.startManager(fmt.Sprintf("manager-%d", len(c.managers)), true, "--pods-source")
}

// selector i: all web pods, or one shard of them.
func (c *chaos) selector(i int) *metav1.LabelSelector {
	m := map[string]string{"app": "web"}
	if i > 0 {
		m["shard"] = string(rune('a' + i - 1))
	}
	return &metav1.LabelSelector{MatchLabels: m}
}

func (c *chaos) newPod() {
	name := fmt.Sprintf("web-%d", c.next)
	shard := string(rune('a' + c.next%2))
	c.next++
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.namespace, Labels: map[string]string{"app": "web", "shard": shard}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}},
	}
	if _, err := clientset.CoreV1().Pods(c.namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
	c.setReady(name, c.rnd.Intn(3) > 0)
	c.pods = append(c.pods, name)
}

// step runs one random operation, on the labelled pod half of the time: that is
// where switches happen.
func (c *chaos) step(labels *labelWatch) {
	pod := c.pods[c.rnd.Intn(len(c.pods))]
	if name, _, n := labels.leader(); n == 1 && c.rnd.Intn(2) == 0 && slices.Contains(c.pods, name) {
		pod = name
	}
	if c.suspended && c.rnd.Intn(2) == 0 {
		c.counts["resume"]++
		c.suspended = false
		c.editGroup(func(g *v1alpha1.LeaderGroup) { g.Spec.Suspend = false })
		return
	}
	switch r := c.rnd.Intn(100); {
	case r < 45:
		c.counts["readiness"]++
		c.setReady(pod, c.rnd.Intn(2) == 0)
	case r < 60:
		c.counts["delete"]++
		if err := clientset.CoreV1().Pods(c.namespace).Delete(context.Background(), pod, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}); err != nil {
			c.t.Fatal(err)
		}
		c.pods = remove(c.pods, pod)
		c.newPod()
	case r < 70:
		c.counts["relabel"]++
		c.patchPod(pod, fmt.Sprintf(`{"metadata":{"labels":{"shard":%q}}}`, string(rune('a'+c.rnd.Intn(2)))))
	case r < 80:
		c.counts["selector"]++
		sel := c.selector(c.rnd.Intn(3))
		c.editGroup(func(g *v1alpha1.LeaderGroup) { g.Spec.Candidates.PodSelector = sel })
	case r < 85:
		c.counts["suspend"]++
		c.suspended = true
		c.editGroup(func(g *v1alpha1.LeaderGroup) { g.Spec.Suspend = true })
	default:
		c.failover()
	}
}

// failover makes the status writer change: the writer is stopped (SIGTERM: it
// releases the lock), killed (its successor waits for the lock to expire), or cut
// off from the API server and healed after its successor took over, so that it comes
// back with a stale view.
func (c *chaos) failover() {
	writer := c.writer()
	if writer == nil {
		return
	}
	switch r := c.rnd.Intn(10); {
	case r < 2 && c.partitions < 2:
		c.counts["partition"]++
		c.partitions++
		writer.proxy.SetMode(testutil.Blackhole)
		c.healAt[writer] = time.Now().Add(leaseDuration + renewDeadline)
		return // it stays among the live: it writes again if it wins the lock back
	case r < 4:
		c.counts["kill"]++
		writer.kill(c.t)
	default:
		c.counts["terminate"]++
		writer.terminate(c.t)
	}
	c.live = removeManager(c.live, writer)
	c.live = append(c.live, c.proxiedPodsManager())
}

// writer is the live manager that holds the manager lock, nil when none does.
func (c *chaos) writer() *manager {
	l, err := clientset.CoordinationV1().Leases(c.namespace).Get(context.Background(), c.lockName, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	for _, m := range c.live {
		if m.id == ptr.Deref(l.Spec.HolderIdentity, "") {
			if _, cut := c.healAt[m]; !cut {
				return m
			}
		}
	}
	return nil
}

func (c *chaos) healDue() {
	for m, at := range c.healAt {
		if time.Now().After(at) {
			m.proxy.SetMode(testutil.Pass)
			delete(c.healAt, m)
		}
	}
}

func (c *chaos) patchPod(name, patch string) {
	_, err := clientset.CoreV1().Pods(c.namespace).Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
}

func (c *chaos) editGroup(edit func(*v1alpha1.LeaderGroup)) {
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 5*time.Second, true, func(ctx context.Context) (bool, error) {
		g := &v1alpha1.LeaderGroup{}
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: c.namespace, Name: "web"}, g); err != nil {
			return false, err
		}
		edit(g)
		if err := k8s.Update(ctx, g); apierrors.IsConflict(err) {
			return false, nil // the status writer wrote status: read again
		} else if err != nil {
			return false, err
		}
		return true, nil
	})
	if err != nil {
		c.t.Fatal(err)
	}
}

// waitSettled waits until exactly one pod is labelled, the one the Lease names at its
// epoch, or none when no selected pod is Ready.
func (c *chaos) waitSettled(labels *labelWatch) {
	c.t.Helper()
	key := types.NamespacedName{Namespace: c.namespace, Name: "web"}
	var last string
	// A killed writer's lock expires after leaseDuration, then a group Lease left
	// unrenewed as long may have to expire too; the rest is slack.
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 3*leaseDuration+10*time.Second, true, func(ctx context.Context) (bool, error) {
		g := &v1alpha1.LeaderGroup{}
		if err := k8s.Get(ctx, key, g); err != nil {
			return false, err
		}
		selector, _ := metav1.LabelSelectorAsSelector(g.Spec.Candidates.PodSelector)
		pods, err := clientset.CoreV1().Pods(c.namespace).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
		if err != nil {
			return false, err
		}
		anyReady := false
		for i := range pods.Items {
			anyReady = anyReady || isReady(&pods.Items[i])
		}
		name, epoch, n := labels.leader()
		l, err := clientset.CoordinationV1().Leases(c.namespace).Get(ctx, "web", metav1.GetOptions{})
		holder, leaseEpoch := "", ""
		if err == nil {
			holder, leaseEpoch = ptr.Deref(l.Spec.HolderIdentity, ""), fmt.Sprint(ptr.Deref(l.Spec.LeaseTransitions, 0))
		}
		last = fmt.Sprintf("%d labelled (%s at epoch %s), Lease %s at epoch %s, a selected pod Ready: %v", n, name, epoch, holder, leaseEpoch, anyReady)
		if !anyReady {
			return n == 0 && holder == "", nil
		}
		return n == 1 && name == holder && epoch == leaseEpoch, nil
	})
	if err != nil {
		c.t.Fatalf("not settled: %s", last)
	}
	c.t.Logf("settled: %s", last)
}

func isReady(p *corev1.Pod) bool {
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status == corev1.ConditionTrue && p.DeletionTimestamp == nil
		}
	}
	return false
}

func remove(list []string, s string) []string {
	out := list[:0:0]
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

func removeManager(list []*manager, m *manager) []*manager {
	out := list[:0:0]
	for _, x := range list {
		if x != m {
			out = append(out, x)
		}
	}
	return out
}
