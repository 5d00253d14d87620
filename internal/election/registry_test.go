package election

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/election-manager/election-manager/internal/leaserecord"
)

// Many electors in one process share one client and one informer: each lease gets
// its own leader, followers cost nothing, and a process stopping hands every lease
// over at once.
func TestManyLeasesShareOneInformer(t *testing.T) {
	ns := newNamespace(t)
	rec := newRecorder(t)
	p1, p2 := startProcess(t, "p1", rec, ns), startProcess(t, "p2", rec, ns)
	const n = 40
	keys := make([]types.NamespacedName, n)
	for i := range keys {
		keys[i] = types.NamespacedName{Namespace: ns, Name: fmt.Sprintf("lock-%02d", i)}
		p1.join(t, keys[i], fast)
	}
	leadsAll := func(id string) func() bool {
		return func() bool {
			for _, k := range keys {
				if rec.leader(k.String()) != id {
					return false
				}
			}
			return true
		}
	}
	eventually(t, 20*time.Second, "p1 to lead every lease", leadsAll("p1"))
	for _, k := range keys {
		p2.join(t, k, fast)
	}
	for _, k := range keys {
		if got := p2.leases.subscribers(k); got != 1 {
			t.Errorf("%s has %d subscribers in p2's informer, want 1", k, got)
		}
	}

	before1, before2 := p1.requests.snapshot(), p2.requests.snapshot()
	eventually(t, 10*time.Second, "two renewals per lease", func() bool { return p1.requests.snapshot()["PUT"] >= before1["PUT"]+2*n })
	after2 := p2.requests.snapshot()
	for _, verb := range []string{"GET", "POST", "PUT", "LIST"} {
		if d := after2[verb] - before2[verb]; d != 0 {
			t.Errorf("p2, following %d leases, made %d lease %s requests", n, d, verb)
		}
	}
	if d := p1.requests.snapshot()["GET"] - before1["GET"]; d != 0 {
		t.Errorf("p1, leading %d leases, made %d lease GET requests", n, d)
	}

	p1.reg.StopAll(time.Now().Add(10 * time.Second))
	stopped := time.Now()
	eventually(t, 10*time.Second, "p2 to lead every lease", leadsAll("p2"))
	list, err := admin.CoordinationV1().Leases(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range list.Items {
		if leaserecord.Holder(&l) != "p2" || leaserecord.Epoch(&l) != 2 || l.Annotations[leaserecord.AnnotationAcquiredHow] != string(leaserecord.AfterRelease) || l.Annotations[leaserecord.AnnotationReleasedBy] != "p1" {
			t.Errorf("%s: holder %q epoch %d annotations %v, want p2 2 AfterRelease released-by p1", l.Name, leaserecord.Holder(&l), leaserecord.Epoch(&l), l.Annotations)
		}
	}
	for _, k := range keys {
		if d := lastTerm(t, rec, k, "p2").start.Sub(stopped); d > 2*time.Second {
			t.Errorf("%s taken over %s after p1 stopped", k, d)
		}
	}
}

// A reconcile still in flight when the process shuts down must not start an elector
// after StopAll: nobody would stop it, and it could lead after the process said it
// had let go.
func TestNoElectorStartsAfterStopAll(t *testing.T) {
	ns := newNamespace(t)
	rec := newRecorder(t)
	p := startProcess(t, "a", rec, ns)
	key := types.NamespacedName{Namespace: ns, Name: "lock"}
	p.join(t, key, fast)
	p.reg.StopAll(time.Time{})
	cfg := fast
	cfg.Lease, cfg.Identity = types.NamespacedName{Namespace: ns, Name: "late"}, "a"
	if e, err := p.reg.Ensure("late", cfg, Callbacks{}); err == nil || e != nil {
		t.Errorf("Ensure after StopAll = %v, %v; want an error and no elector", e, err)
	}
	if keys := p.reg.Keys(); len(keys) != 0 {
		t.Errorf("electors after StopAll: %v", keys)
	}
}

// A graceful stop releases a few Leases at a time, each as soon as the last is done,
// so that the takeovers they call for do not queue up behind a thousand releases;
// every Lease is still handed over.
func TestStopAllReleasesAFewAtATime(t *testing.T) {
	ns := newNamespace(t)
	rec := newRecorder(t)
	p1, p2 := startProcess(t, "p1", rec, ns), startProcess(t, "p2", rec, ns)
	keys := joinAll(t, rec, ns, 3*releaseWindow, p1, p2)
	// Releases that take a while, so that those sent together overlap.
	p1.requests.releaseDelay.Store(int64(100 * time.Millisecond))
	p1.reg.StopAll(time.Now().Add(time.Minute))
	if most := p1.requests.mostReleasing.Load(); most > releaseWindow || most < 2 {
		t.Errorf("%d releases in flight at once, want 2 to %d", most, releaseWindow)
	}
	eventually(t, 10*time.Second, "p2 to lead every lease", func() bool { return leadsAll(rec, keys, "p2") })
}

// A graceful stop that runs out of time releases the rest at once: the process must
// not outlive its grace period still leading.
func TestStopAllReleasesTheRestAtOnceWhenItsTimeRunsOut(t *testing.T) {
	ns := newNamespace(t)
	rec := newRecorder(t)
	p1, p2 := startProcess(t, "p1", rec, ns), startProcess(t, "p2", rec, ns)
	n := 3 * releaseWindow
	keys := joinAll(t, rec, ns, n, p1, p2)
	// Paced, three rounds of releases would take three delays.
	const delay = 1500 * time.Millisecond
	p1.requests.releaseDelay.Store(int64(delay))
	start := time.Now()
	p1.reg.StopAll(start.Add(200 * time.Millisecond))
	if took := time.Since(start); took > 2*delay {
		t.Errorf("StopAll took %s; its time ran out after 200ms, and a release takes %s", took, delay)
	}
	if most := p1.requests.mostReleasing.Load(); most <= releaseWindow {
		t.Errorf("%d releases in flight at once, want more than %d once the time ran out", most, releaseWindow)
	}
	eventually(t, 10*time.Second, "p2 to lead every lease", func() bool { return leadsAll(rec, keys, "p2") })
}

// joinAll makes leader lead n Leases in ns and the others follow them.
func joinAll(t *testing.T, rec *recorder, ns string, n int, leader *process, others ...*process) []types.NamespacedName {
	t.Helper()
	keys := make([]types.NamespacedName, n)
	for i := range keys {
		keys[i] = types.NamespacedName{Namespace: ns, Name: fmt.Sprintf("lock-%02d", i)}
		leader.join(t, keys[i], fast)
	}
	eventually(t, 20*time.Second, leader.id+" to lead every lease", func() bool { return leadsAll(rec, keys, leader.id) })
	for _, p := range others {
		for _, k := range keys {
			p.join(t, k, fast)
		}
	}
	return keys
}

func leadsAll(rec *recorder, keys []types.NamespacedName, id string) bool {
	for _, k := range keys {
		if rec.leader(k.String()) != id {
			return false
		}
	}
	return true
}
