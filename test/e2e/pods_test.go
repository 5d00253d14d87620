package e2e

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/podsource"
)

// No kubelet runs here: tests create pods and set their Ready condition through the
// status subresource, as a kubelet would.

func podsGroup(g *v1alpha1.LeaderGroup) {
	g.Spec.Candidates = v1alpha1.Candidates{Source: v1alpha1.SourcePods,
		PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}
}

func (c *cluster) pod(name string, ready bool) {
	c.t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.namespace, Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}},
	}
	if _, err := clientset.CoreV1().Pods(c.namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		c.t.Fatal(err)
	}
	c.setReady(name, ready)
}

func (c *cluster) setReady(name string, ready bool) {
	c.t.Helper()
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	// The manager may relabel the pod in between: read again on a conflict.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := clientset.CoreV1().Pods(c.namespace).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status, LastTransitionTime: metav1.Now()}}
		_, err = clientset.CoreV1().Pods(c.namespace).UpdateStatus(context.Background(), p, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		c.t.Fatal(err)
	}
}

// labelWatch follows the pods of a namespace and records, after every event, which
// pods carry the leader label: a Service selecting it must never see two of one
// group (pods labelled with the same value) that can take new traffic (Ready and not
// terminating). A pod that cannot may keep the label until the next leader has it.
type labelWatch struct {
	mu       sync.Mutex
	labelled map[string]labelled // by pod
	most     int                 // the most pods that can take traffic seen labelled with one value at once
	first    string              // the first time two were, described
	events   int
	stop     func()
}

type labelled struct {
	value, epoch string
	serving      bool // Ready and not terminating: a Service sends it new requests
}

func (c *cluster) watchLabels() *labelWatch {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	list, err := clientset.CoreV1().Pods(c.namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	w := &labelWatch{labelled: map[string]labelled{}, stop: cancel}
	for i := range list.Items {
		w.see(&list.Items[i], false)
	}
	events, err := clientset.CoreV1().Pods(c.namespace).Watch(ctx, metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		c.t.Fatal(err)
	}
	go func() {
		for e := range events.ResultChan() {
			if p, ok := e.Object.(*corev1.Pod); ok {
				w.see(p, e.Type == watch.Deleted)
			}
		}
	}()
	c.t.Cleanup(cancel)
	return w
}

func (w *labelWatch) see(p *corev1.Pod, deleted bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.events++
	if value, ok := p.Labels[podsource.LabelLeader]; ok && !deleted {
		w.labelled[p.Name] = labelled{value: value, epoch: p.Annotations[podsource.AnnotationEpoch], serving: serving(p)}
	} else {
		delete(w.labelled, p.Name)
	}
	perValue := map[string]int{}
	for _, l := range w.labelled {
		if l.serving {
			perValue[l.value]++
			w.most = max(w.most, perValue[l.value])
		}
	}
	if w.most > 1 && w.first == "" {
		w.first = fmt.Sprintf("%s at %s: %v", p.Name, time.Now().Format(time.StampMicro), w.labelled)
	}
}

// serving tells whether a Service sends new requests to p: Ready and not terminating.
func serving(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// seen counts the pod events the watch has handled.
func (w *labelWatch) seen() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.events
}

// leader is the one labelled pod and its epoch, "" when none or several.
func (w *labelWatch) leader() (name, epoch string, count int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for n, l := range w.labelled {
		name, epoch = n, l.epoch
	}
	if len(w.labelled) != 1 {
		return "", "", len(w.labelled)
	}
	return name, epoch, 1
}

func (w *labelWatch) requireNeverTwo(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.most > 1 {
		t.Errorf("SAFETY: %d pods that could take new traffic carried one group's leader label at once; first: %s", w.most, w.first)
	}
}

// waitForLabel polls until exactly one pod, other than not, is labelled, and returns it.
func (w *labelWatch) waitForLabel(t *testing.T, not string, timeout time.Duration) (string, string) {
	t.Helper()
	var name, epoch string
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		var n int
		name, epoch, n = w.leader()
		return n == 1 && name != not, nil
	})
	if err != nil {
		t.Fatalf("no single leader label other than %q within %s", not, timeout)
	}
	return name, epoch
}

// threeReadyPodsElected runs three Ready pods and a Pods group "web" over them, and
// returns once one of them is elected and labelled.
func (c *cluster) threeReadyPodsElected() (*labelWatch, *v1alpha1.LeaderGroup) {
	c.t.Helper()
	labels := c.watchLabels()
	for _, name := range []string{"web-a", "web-b", "web-c"} {
		c.pod(name, true)
	}
	c.podsManager()
	c.group("web", podsGroup)
	g := c.waitFor("web", 10*time.Second, "a pod elected", func(g *v1alpha1.LeaderGroup) bool { return g.Status.Holder != "" })
	labels.waitForLabel(c.t, "", 5*time.Second)
	return labels, g
}

func (c *cluster) podsManager(extra ...string) *manager {
	return c.startManager(fmt.Sprintf("manager-%d", len(c.managers)), false, append([]string{"--pods-source"}, extra...)...)
}

func TestPodsThreeReadyPodsOneLeader(t *testing.T) {
	c := newCluster(t)
	labels, g := c.threeReadyPodsElected()
	name, epoch := labels.waitForLabel(t, "", 5*time.Second)
	if name != g.Status.Holder || epoch != fmt.Sprint(g.Status.Transitions) {
		t.Errorf("labelled %s (epoch %s), status holder %s (epoch %d)", name, epoch, g.Status.Holder, g.Status.Transitions)
	}
	g = c.waitFor("web", 5*time.Second, "three candidates", func(g *v1alpha1.LeaderGroup) bool { return len(g.Status.Candidates) == 3 })
	for _, cand := range g.Status.Candidates {
		if !cand.Ready {
			t.Errorf("candidate %s not ready", cand.Identity)
		}
	}
	labels.requireNeverTwo(t)
}

// A leader that can no longer lead is replaced at once, and the label never sits on
// two pods: the old one loses it before the Lease moves.
func TestPodsLeaderReplacedAtOnce(t *testing.T) {
	for _, how := range []string{"unready", "deleted"} {
		t.Run(how, func(t *testing.T) {
			c := newCluster(t)
			labels, old := c.threeReadyPodsElected()

			changed := time.Now()
			if how == "unready" {
				c.setReady(old.Status.Holder, false)
			} else if err := clientset.CoreV1().Pods(c.namespace).Delete(context.Background(), old.Status.Holder, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
				t.Fatal(err)
			}
			name, epoch := labels.waitForLabel(t, old.Status.Holder, 5*time.Second)
			if took := time.Since(changed); took > time.Second {
				t.Errorf("the label moved %s after the leader was %s, want within 1s", took, how)
			}
			g := c.waitFor("web", 5*time.Second, "the new holder recorded", heldBy(name))
			if epoch != fmt.Sprint(g.Status.Transitions) || g.Status.Transitions <= old.Status.Transitions {
				t.Errorf("epoch label %s, status %d, before %d", epoch, g.Status.Transitions, old.Status.Transitions)
			}
			if h := g.Status.History; len(h) < 2 || h[1].EndReason != v1alpha1.EndReleased || h[0].StartReason != v1alpha1.StartAfterRelease {
				t.Errorf("history %s, want Released then AfterRelease", describeHistory(g))
			}
			labels.requireNeverTwo(t)
		})
	}
}

// A manager failover shorter than the group's leaseDuration changes nothing: the new
// status writer renews the Lease for the pod that still holds it.
func TestPodsManagerRestartKeepsTheLeader(t *testing.T) {
	c := newCluster(t)
	labels := c.watchLabels()
	for _, name := range []string{"web-a", "web-b"} {
		c.pod(name, true)
	}
	m := c.podsManager()
	c.group("web", podsGroup, func(g *v1alpha1.LeaderGroup) {
		g.Spec.LeaseDuration = metav1.Duration{Duration: 15 * time.Second}
		g.Spec.RenewDeadline = metav1.Duration{Duration: 10 * time.Second}
		g.Spec.RetryPeriod = metav1.Duration{Duration: 2 * time.Second}
	})
	before := c.waitFor("web", 10*time.Second, "a pod elected", func(g *v1alpha1.LeaderGroup) bool { return g.Status.Holder != "" })
	name, epoch := labels.waitForLabel(t, "", 5*time.Second)

	m.terminate(t)
	next := c.podsManager()
	next.WaitForOutput(t, "Became the status writer", 10*time.Second)
	lease := types.NamespacedName{Namespace: c.namespace, Name: "web"}
	renewed := getLease(t, lease).Spec.RenewTime.Time
	// The new writer renews the Lease for the same pod, at the same epoch.
	pollLease(t, lease, 10*time.Second, "renewed by the new writer", func(l *leaseView) bool {
		return l != nil && l.holder == name && fmt.Sprint(l.epoch) == epoch && getLease(t, lease).Spec.RenewTime.After(renewed)
	})
	after := c.waitFor("web", 5*time.Second, "observed by the new writer", func(g *v1alpha1.LeaderGroup) bool {
		return g.Status.Holder == name
	})
	if after.Status.Transitions != before.Status.Transitions || len(after.Status.History) != len(before.Status.History) {
		t.Errorf("the failover made a transition: before %s, after %s", describeHistory(before), describeHistory(after))
	}
	if n, e, _ := labels.leader(); n != name || e != epoch {
		t.Errorf("label on %s (epoch %s), want %s (epoch %s)", n, e, name, epoch)
	}
	labels.requireNeverTwo(t)
}

func TestPodsNoReadyPodThenOne(t *testing.T) {
	c := newCluster(t)
	labels := c.watchLabels()
	c.pod("web-a", false)
	c.pod("web-b", false)
	c.podsManager()
	c.group("web", podsGroup)
	g := c.waitFor("web", 10*time.Second, "NoCandidates", readyBecause(v1alpha1.ReasonNoCandidates))
	if g.Status.Holder != "" {
		t.Errorf("holder %q with no Ready pod", g.Status.Holder)
	}
	if _, _, n := labels.leader(); n != 0 {
		t.Errorf("%d pods labelled with no Ready pod", n)
	}
	c.setReady("web-b", true)
	c.waitFor("web", 5*time.Second, "web-b elected", heldBy("web-b"))
	if name, _ := labels.waitForLabel(t, "", 5*time.Second); name != "web-b" {
		t.Errorf("labelled %s, want web-b", name)
	}
	labels.requireNeverTwo(t)
}

// A status writer gone longer than the group's leaseDuration: nobody renewed, and the
// history says so — the lease expired, and the same pod resumed in a new term.
func TestPodsManagerGoneLongerRecordsTheExpiry(t *testing.T) {
	c := newCluster(t)
	labels := c.watchLabels()
	c.pod("web-a", true)
	m := c.podsManager()
	c.group("web", podsGroup, func(g *v1alpha1.LeaderGroup) {
		g.Spec.LeaseDuration = metav1.Duration{Duration: 2 * time.Second}
		g.Spec.RenewDeadline = metav1.Duration{Duration: time.Second}
		g.Spec.RetryPeriod = metav1.Duration{Duration: 500 * time.Millisecond}
	})
	before := c.waitFor("web", 10*time.Second, "web-a elected", heldBy("web-a"))
	m.terminate(t)
	lease := types.NamespacedName{Namespace: c.namespace, Name: "web"}
	lastRenewal := getLease(t, lease).Spec.RenewTime.Time
	// Wait out the lease on the clock itself: this is the condition under test.
	if err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return time.Since(lastRenewal) > 2*time.Second, nil }); err != nil {
		t.Fatal(err)
	}
	c.podsManager()
	g := c.waitFor("web", 10*time.Second, "the expiry and the resumption recorded", func(g *v1alpha1.LeaderGroup) bool {
		return len(g.Status.History) == 2 && g.Status.Holder == "web-a"
	})
	h := g.Status.History
	if h[1].EndReason != v1alpha1.EndExpired || h[0].StartReason != v1alpha1.StartAfterExpiry || h[0].Transition != before.Status.Transitions+1 {
		t.Errorf("history %s, want web-a Expired, then web-a AfterExpiry at epoch %d", describeHistory(g), before.Status.Transitions+1)
	}
	if name, epoch := labels.waitForLabel(t, "", 5*time.Second); name != "web-a" || epoch != fmt.Sprint(h[0].Transition) {
		t.Errorf("label on %s at epoch %s", name, epoch)
	}
	labels.requireNeverTwo(t)
}

// withValue lists the pods labelled with value, sorted.
func (w *labelWatch) withValue(value string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for name, l := range w.labelled {
		if l.value == value {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Two groups over the same pods: each labels its own leader with its own name, so a
// Service selects one group's leader, and a pod leads one group at a time.
func TestPodsTwoGroupsOverTheSamePods(t *testing.T) {
	c := newCluster(t)
	labels := c.watchLabels()
	for _, name := range []string{"web-a", "web-b", "web-c"} {
		c.pod(name, true)
	}
	c.podsManager()
	c.group("blue", podsGroup)
	c.group("green", podsGroup)
	// leaders waits for one pod labelled per group, each its holder, blue's not notBlue.
	leaders := func(notBlue string) (string, string) {
		t.Helper()
		var blue, green *v1alpha1.LeaderGroup
		err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
			blue = c.waitFor("blue", 10*time.Second, "elected", func(g *v1alpha1.LeaderGroup) bool { return g.Status.Holder != "" })
			green = c.waitFor("green", 10*time.Second, "elected", func(g *v1alpha1.LeaderGroup) bool { return g.Status.Holder != "" })
			b, g := labels.withValue("blue"), labels.withValue("green")
			return len(b) == 1 && len(g) == 1 && b[0] == blue.Status.Holder && g[0] == green.Status.Holder && b[0] != notBlue, nil
		})
		if err != nil {
			t.Fatalf("want one pod labelled per group, each its holder: blue %v (holder %s), green %v (holder %s), all %v",
				labels.withValue("blue"), blue.Status.Holder, labels.withValue("green"), green.Status.Holder, labels.withValue("true"))
		}
		if blue.Status.Holder == green.Status.Holder {
			t.Fatalf("%s leads both groups", blue.Status.Holder)
		}
		return blue.Status.Holder, green.Status.Holder
	}
	blue, green := leaders("")
	c.setReady(blue, false)
	nextBlue, nextGreen := leaders(blue)
	if nextGreen != green {
		t.Errorf("after %s turned unready: blue on %s, green on %s (was %s)", blue, nextBlue, nextGreen, green)
	}
	labels.requireNeverTwo(t)
}

// A group deleted while no manager writes status keeps no leader label: the next
// status writer finds the label of a group that is gone, by the label, and removes
// it. There is no finalizer to wait for a writer.
func TestPodsGroupDeletedWhileNoWriterLeavesNoLabel(t *testing.T) {
	c := newCluster(t)
	labels := c.watchLabels()
	c.pod("web-a", true)
	m := c.podsManager()
	c.group("web", podsGroup)
	c.waitFor("web", 10*time.Second, "web-a elected", heldBy("web-a"))
	labels.waitForLabel(t, "", 5*time.Second)

	// Killed, the writer keeps the manager's lock for its leaseDuration: the next one
	// sees the pod (and its label) before it writes, and must look again when it does.
	m.kill(t)
	if err := k8s.Delete(context.Background(), &v1alpha1.LeaderGroup{ObjectMeta: metav1.ObjectMeta{Namespace: c.namespace, Name: "web"}}); err != nil {
		t.Fatal(err)
	}
	next := c.podsManager()
	next.WaitForOutput(t, "Became the status writer", 2*leaseDuration)
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		_, _, n := labels.leader()
		return n == 0, nil
	})
	if err != nil {
		t.Errorf("web-a still labelled 10s after the next writer took over: %v", labels.withValue("web"))
	}
}
