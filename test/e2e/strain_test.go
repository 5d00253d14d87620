package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/testutil"
)

// While the API server answers slowly, the status writer yields to the renewals:
// its status writes go one at a time, and a group whose Lease changed several times
// meanwhile shows the changes in fewer writes, counting the terms it never showed
// as missed. Status still ends up true.
func TestStatusWritesTakeTurnsWhileTheServerIsSlow(t *testing.T) {
	c := newCluster(t)
	port := testutil.FreePort(t)
	m := c.startManager("manager-a", true, fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", port), "--metrics-secure=false")
	metrics := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	// Groups the manager leads: their renewals tell it how the server answers.
	for i := range 3 {
		c.group(fmt.Sprintf("led-%d", i))
	}
	// External groups on Leases this test writes, as a foreign elector would.
	const groups, terms = 8, 4
	for i := range groups {
		name := fmt.Sprintf("ext-%d", i)
		c.group(name, external)
		writeForeignTerm(t, c.namespace, name, "p0", 0)
	}
	for i := range 3 {
		c.waitFor(fmt.Sprintf("led-%d", i), 20*time.Second, "held by manager-a", heldBy("manager-a"))
	}
	for i := range groups {
		c.waitFor(fmt.Sprintf("ext-%d", i), 20*time.Second, "held by p0", heldBy("p0"))
	}

	// Every answer to the manager comes this late: past a tenth of renewDeadline,
	// so renewals count as slow, and every status write takes at least this long.
	const delay = 400 * time.Millisecond
	m.proxy.SetDelay(delay)
	m.WaitForOutput(t, "Spacing out renewals", 20*time.Second)
	waitForMetric(t, metrics, "election_manager_renewals_spaced_out 1")

	writes := watchStatusWrites(t, c.namespace, "ext-")
	from := time.Now()
	for term := int32(1); term <= terms; term++ {
		for i := range groups {
			writeForeignTerm(t, c.namespace, fmt.Sprintf("ext-%d", i), fmt.Sprintf("p%d", term), term)
		}
	}
	final := make([]*v1alpha1.LeaderGroup, groups)
	for i := range groups {
		final[i] = c.waitFor(fmt.Sprintf("ext-%d", i), time.Minute, fmt.Sprintf("held by p%d", terms), heldBy(fmt.Sprintf("p%d", terms)))
	}
	took := time.Since(from)
	n := writes.count()

	// One at a time, each at least a delay long; one more for a write the window cut.
	if limit := int(took/delay) + 1; n > limit {
		t.Errorf("%d status writes in %s: more than one at a time (at most %d)", n, took.Round(time.Millisecond), limit)
	}
	missed := 0
	for _, g := range final {
		h := g.Status.History
		// Every term is accounted for: shown, or counted as missed by the next one.
		for j := 0; j+1 < len(h); j++ {
			if h[j].Transition != h[j+1].Transition+1+h[j].MissedTransitions {
				t.Errorf("%s: history %s does not account for every term", g.Name, describeHistory(g))
			}
		}
		if h[0].Transition != terms || h[len(h)-1].Transition != 0 {
			t.Errorf("%s: history %s, want terms 0 to %d", g.Name, describeHistory(g), terms)
		}
		for _, e := range h {
			missed += int(e.MissedTransitions)
		}
	}
	t.Logf("%d status writes in %s for %d groups × %d terms; %d terms never shown, counted as missed", n, took.Round(time.Millisecond), groups, terms, missed)
	if missed == 0 {
		t.Error("no group gathered changes into one write: status was written for every term")
	}

	// The strain ends: renewals and status writes go at full pace again.
	m.proxy.SetDelay(0)
	m.WaitForOutput(t, "Renewing every retryPeriod again", time.Minute)
	waitForMetric(t, metrics, "election_manager_renewals_spaced_out 0")
	waitForMetric(t, metrics, "election_manager_status_writes_waiting 0")
}

// writeForeignTerm writes the Lease as a client-go elector would for a new term.
func writeForeignTerm(t *testing.T, namespace, name, holder string, transitions int32) {
	t.Helper()
	leases := clientset.CoordinationV1().Leases(namespace)
	now := metav1.NewMicroTime(time.Now())
	spec := coordinationv1.LeaseSpec{HolderIdentity: ptr.To(holder), LeaseDurationSeconds: ptr.To(int32(leaseDuration / time.Second)),
		AcquireTime: &now, RenewTime: &now, LeaseTransitions: ptr.To(transitions)}
	l, err := leases.Get(context.Background(), name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = leases.Create(context.Background(), &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}, metav1.CreateOptions{})
	case err == nil:
		l.Spec = spec
		_, err = leases.Update(context.Background(), l, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
}

// statusWrites counts the changes to the groups named with a prefix, from a watch:
// the test changes no group, so each is a status write.
type statusWrites struct {
	mu sync.Mutex
	n  int
}

func (w *statusWrites) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

func watchStatusWrites(t *testing.T, namespace, prefix string) *statusWrites {
	t.Helper()
	list := &v1alpha1.LeaderGroupList{}
	if err := k8s.List(context.Background(), list); err != nil {
		t.Fatal(err)
	}
	wc, err := client.NewWithWatch(cp.Config, client.Options{Scheme: k8s.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	wi, err := wc.Watch(ctx, &v1alpha1.LeaderGroupList{}, client.InNamespace(namespace), &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: list.ResourceVersion}})
	if err != nil {
		t.Fatal(err)
	}
	w := &statusWrites{}
	go func() {
		defer wi.Stop()
		for ev := range wi.ResultChan() {
			g, ok := ev.Object.(*v1alpha1.LeaderGroup)
			if ev.Type == watch.Modified && ok && strings.HasPrefix(g.Name, prefix) {
				w.mu.Lock()
				w.n++
				w.mu.Unlock()
			}
		}
	}()
	return w
}
