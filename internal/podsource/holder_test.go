package podsource

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/election-manager/election-manager/internal/testutil"
)

// These tests run Sync against a real kube-apiserver: the preconditions under test
// are the API server's.

var (
	k8s       client.Client
	clientset kubernetes.Interface
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		cp, err := testutil.StartControlPlaneWith(testutil.ControlPlaneOptions{NoCRDs: true})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer func() { _ = cp.Stop() }()
		if k8s, err = client.New(cp.Config, client.Options{Scheme: clientgoscheme.Scheme}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if clientset, err = kubernetes.NewForConfig(cp.Config); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}())
}

// setUp makes a namespace with Ready pods and returns a holder for it and a group
// named g over those pods (its Lease not yet created).
func setUp(t *testing.T, names ...string) (*Holder, Group) {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "holder-"}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	g := Group{Lease: types.NamespacedName{Namespace: ns.Name, Name: "g"},
		LeaseDuration: 6 * time.Second, RetryPeriod: time.Second,
		Owner: metav1.OwnerReference{APIVersion: "coordination.electionmanager.dev/v1alpha1", Kind: "LeaderGroup", Name: "g", UID: "uid-g"}}
	for _, name := range names {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns.Name, Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}}}
		if err := k8s.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		if err := k8s.Status().Update(ctx, p); err != nil {
			t.Fatal(err)
		}
		g.Pods = append(g.Pods, *p)
	}
	h := &Holder{Client: k8s, APIReader: k8s, Leases: clientset.CoordinationV1(), Clock: clock.RealClock{}}
	return h, g
}

func podLabel(t *testing.T, ns, name string) (string, bool) {
	t.Helper()
	p := &corev1.Pod{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, p); err != nil {
		t.Fatal(err)
	}
	v, ok := p.Labels[LabelLeader]
	return v, ok
}

// An instance that no longer holds the manager's lock writes neither the Lease nor
// a label, whatever its view says.
func TestSyncWritesNothingOnceNoLongerWriting(t *testing.T) {
	h, g := setUp(t, "web-a")
	h.Writing = func() bool { return false }
	if _, _, err := h.Sync(context.Background(), g); !errors.Is(err, errNotWriting) {
		t.Fatalf("Sync returned %v, want %v", err, errNotWriting)
	}
	if _, err := clientset.CoordinationV1().Leases(g.Lease.Namespace).Get(context.Background(), "g", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the Lease was written (get: %v)", err)
	}
	if v, ok := podLabel(t, g.Lease.Namespace, "web-a"); ok {
		t.Errorf("web-a labelled %q", v)
	}
}

// A label goes on only the pod version the decision was made on: a pod changed
// since (here: relabelled by its owner) is not labelled from the stale view.
func TestSyncLabelsNoStalePodVersion(t *testing.T) {
	h, g := setUp(t, "web-a")
	stale := g.Pods[0].DeepCopy()
	p := &corev1.Pod{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(stale), p); err != nil {
		t.Fatal(err)
	}
	p.Labels["app"] = "other"
	if err := k8s.Update(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.Sync(context.Background(), g); !apierrors.IsConflict(errors.Unwrap(err)) {
		t.Fatalf("Sync on a stale pod returned %v, want a conflict", err)
	}
	if v, ok := podLabel(t, g.Lease.Namespace, "web-a"); ok {
		t.Errorf("web-a labelled %q from a stale view", v)
	}
}

// A pod the selector no longer picks loses the group's label before the Lease and
// the label move on: labels are found by label, not through the selector.
func TestSyncUnlabelsPodsOutsideTheSelector(t *testing.T) {
	h, g := setUp(t, "web-a", "web-b")
	ctx := context.Background()
	if _, _, err := h.Sync(ctx, g); err != nil {
		t.Fatal(err)
	}
	first := choose(g.Pods, "", "", true)
	if v, _ := podLabel(t, g.Lease.Namespace, first); v != "g" {
		t.Fatalf("%s labelled %q, want g", first, v)
	}
	// first leaves the selector: the group's view no longer has it.
	var rest []corev1.Pod
	for _, name := range []string{"web-a", "web-b"} {
		if name != first {
			p := &corev1.Pod{}
			if err := k8s.Get(ctx, types.NamespacedName{Namespace: g.Lease.Namespace, Name: name}, p); err != nil {
				t.Fatal(err)
			}
			rest = append(rest, *p)
		}
	}
	g.Pods = rest
	l, err := clientset.CoordinationV1().Leases(g.Lease.Namespace).Get(ctx, "g", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g.Current = l
	written, _, err := h.Sync(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := podLabel(t, g.Lease.Namespace, first); ok {
		t.Errorf("%s, out of the selector, still labelled %q", first, v)
	}
	if v, _ := podLabel(t, g.Lease.Namespace, rest[0].Name); v != "g" || *written.Spec.HolderIdentity != rest[0].Name {
		t.Errorf("%s labelled %q, Lease held by %s", rest[0].Name, v, *written.Spec.HolderIdentity)
	}
}

// countingReader counts the lists that go past the cache.
type countingReader struct {
	client.Reader
	lists int
}

func (c *countingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	c.lists++
	return c.Reader.List(ctx, list, opts...)
}

// A renewal in a steady term reads no pods past the cache: Sync runs every
// retryPeriod for every Pods group.
func TestSyncRenewsFromTheCache(t *testing.T) {
	h, g := setUp(t, "web-a")
	fresh := &countingReader{Reader: k8s}
	h.APIReader = fresh
	ctx := context.Background()
	written, _, err := h.Sync(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.lists != 1 {
		t.Errorf("an election listed %d times past the cache, want 1", fresh.lists)
	}
	p := &corev1.Pod{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(&g.Pods[0]), p); err != nil {
		t.Fatal(err)
	}
	g.Pods, g.Current = []corev1.Pod{*p}, written
	for range 3 {
		if _, _, err := h.Sync(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	if fresh.lists != 1 {
		t.Errorf("three renewals listed %d times past the cache, want none", fresh.lists-1)
	}
}

// A terminating leader keeps its label until its successor has it, so that a
// Service goes on reaching it while it drains; it can never take new requests
// again. Any other leader loses it first: one that turned unready may turn Ready
// again (while no status writer runs, after one died mid-switch), and one still
// Ready takes requests (here: handing over to the preferred pod). So two pods that
// take requests never carry it.
func TestSyncMovesTheLabelInTheOrderThatKeepsOneServingLeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		move func(g *Group, leader, other string)
		want func(leader, other string) []string
		// change makes the leader unready or terminating.
		change func(t *testing.T, p *corev1.Pod)
	}{
		{"a terminating leader", func(*Group, string, string) {},
			func(leader, other string) []string { return []string{other + "+", leader + "-"} }, terminate},
		{"a leader that turned unready", func(*Group, string, string) {},
			func(leader, other string) []string { return []string{leader + "-", other + "+"} }, unready},
		{"a Ready leader handing over", func(g *Group, _, other string) { g.Preferred = other },
			func(leader, other string) []string { return []string{leader + "-", other + "+"} }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, g := setUp(t, "web-a", "web-b")
			ctx := context.Background()
			if _, _, err := h.Sync(ctx, g); err != nil {
				t.Fatal(err)
			}
			leader := choose(g.Pods, "", "", true)
			other := map[string]string{"web-a": "web-b", "web-b": "web-a"}[leader]
			if tc.change != nil {
				p := &corev1.Pod{}
				if err := k8s.Get(ctx, types.NamespacedName{Namespace: g.Lease.Namespace, Name: leader}, p); err != nil {
					t.Fatal(err)
				}
				tc.change(t, p)
			}
			var pods corev1.PodList
			if err := k8s.List(ctx, &pods, client.InNamespace(g.Lease.Namespace)); err != nil {
				t.Fatal(err)
			}
			g.Pods = pods.Items
			l, err := clientset.CoordinationV1().Leases(g.Lease.Namespace).Get(ctx, "g", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			g.Current = l
			tc.move(&g, leader, other)

			w, err := clientset.CoreV1().Pods(g.Lease.Namespace).Watch(ctx, metav1.ListOptions{ResourceVersion: pods.ResourceVersion})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Stop()
			if _, _, err := h.Sync(ctx, g); err != nil {
				t.Fatal(err)
			}
			var order []string
			labelled := map[string]bool{leader: true}
			for len(order) < 2 {
				select {
				case ev := <-w.ResultChan():
					p := ev.Object.(*corev1.Pod)
					if on := p.Labels[LabelLeader] == "g"; on != labelled[p.Name] {
						labelled[p.Name] = on
						order = append(order, p.Name+map[bool]string{true: "+", false: "-"}[on])
					}
				case <-time.After(30 * time.Second):
					t.Fatalf("label changes seen: %v, want two", order)
				}
			}
			if want := tc.want(leader, other); !reflect.DeepEqual(order, want) {
				t.Errorf("label changes %v, want %v", order, want)
			}
		})
	}
}

func unready(t *testing.T, p *corev1.Pod) {
	t.Helper()
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}
	if err := k8s.Status().Update(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

// terminate deletes p, which a finalizer keeps terminating until the test ends.
func terminate(t *testing.T, p *corev1.Pod) {
	t.Helper()
	ctx := context.Background()
	p.Finalizers = append(p.Finalizers, "test.electionmanager.dev/hold")
	if err := k8s.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cur := &corev1.Pod{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(p), cur); err == nil {
			cur.Finalizers = nil
			_ = k8s.Update(ctx, cur)
		}
	})
	if err := k8s.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
}
