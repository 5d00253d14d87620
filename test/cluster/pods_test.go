//go:build cluster

package cluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/election-manager/election-manager/api/v1alpha1"
)

const leaderLabel = "coordination.electionmanager.dev/leader"

// webApp is a three-replica Deployment of the test app with a real readiness probe, a
// Pods group over it, and a Service that reaches only the pod with the leader label.
const webApp = `apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      terminationGracePeriodSeconds: 5
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: web
        image: %[2]s
        imagePullPolicy: Never
        ports: [{containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /ready, port: 8080}
          periodSeconds: 1
          failureThreshold: 1
        securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
---
apiVersion: coordination.electionmanager.dev/v1alpha1
kind: LeaderGroup
metadata: {name: %[1]s, namespace: default}
spec:
  candidates:
    source: Pods
    podSelector: {matchLabels: {app: %[1]s}}
---
apiVersion: v1
kind: Service
metadata: {name: %[1]s-leader, namespace: default}
spec:
  selector: {app: %[1]s, coordination.electionmanager.dev/leader: %[1]s}
  ports: [{port: 80, targetPort: 8080}]
`

// routingLag bounds how long a Service may still send a request to a pod after its
// leader label is gone: the EndpointSlice controller, then kube-proxy's iptables sync.
const routingLag = 5 * time.Second

// testPodsService sends requests at a steady rate through the leader-only Service's
// cluster IP, from the node, while the leader fails its readiness probe, is deleted,
// and while the Deployment is rolled. Every answer must come from the pod that holds
// the label (or held it within routingLag); the label is never on two pods that can take
// new requests (Ready, not terminating); the
// test reports how many requests failed and the longest run of failures.
func testPodsService(t *testing.T) {
	apply(t, fmt.Sprintf(webApp, "web", cluster.Images.TestApp))
	defer run(t, kubectl, "delete", "deployment/web", "service/web-leader", "leadergroup/web", "-n", "default", "--wait=false")
	rolledOut(t, "default", "web", 2*time.Minute)
	first := waitLabelled(t, "web", "", time.Minute)

	svc, err := clientset.CoreV1().Services("default").Get(context.Background(), "web-leader", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + svc.Spec.ClusterIP + "/"
	eventually(t, "the Service answering from the leader", time.Minute, func() (bool, error) {
		r := get(&http.Client{Timeout: time.Second}, url)
		return r.pod == first, r.err
	})
	labels := watchLabels(t, "web")
	load := startLoad(url)
	// A phase ends when the Service answers from the leader the action left.
	phase := func(name string, act func() string) {
		start := time.Now()
		prev := leaderOf(t, "web")
		leader := act()
		load.waitAnswer(t, leader, start, time.Minute)
		load.mark(name)
		if leader != prev {
			t.Logf("%s: %s → %s, labelled %s after %s stopped taking new requests through the Service", name, prev, leader,
				labels.since(prev, leader, start), prev)
		}
	}
	phase("steady", func() string {
		time.Sleep(3 * time.Second) // a stretch without faults, to compare the others with
		return first
	})
	phase("leader fails readiness", func() string {
		if err := post("http://" + podIP(t, first) + ":8080/unready"); err != nil {
			t.Fatal(err)
		}
		return waitLabelled(t, "web", first, time.Minute)
	})
	phase("leader deleted", func() string {
		cur := waitLabelled(t, "web", "", time.Minute)
		run(t, kubectl, "delete", "pod", cur, "-n", "default", "--wait=false")
		return waitLabelled(t, "web", cur, time.Minute)
	})
	// A rolling update moves leadership once, on purpose, to the first Ready pod of the
	// new revision, rather than once per old pod it replaces.
	for i := 1; i <= 2; i++ {
		phase(fmt.Sprintf("rollout restart %d", i), func() string {
			before := leaseEpoch(t, "web")
			run(t, kubectl, "rollout", "restart", "deployment/web", "-n", "default")
			rolledOut(t, "default", "web", 3*time.Minute)
			leader := waitLabelled(t, "web", "", time.Minute)
			epoch := leaseEpoch(t, "web")
			if moves := epoch - before; moves != 1 {
				t.Errorf("rollout %d moved leadership %d times, want once", i, moves)
			}
			eventually(t, "history records the move as a handover", 30*time.Second, func() (bool, error) {
				h := group(t, "default", "web").Status.History // newest first
				return len(h) > 0 && h[0].Transition == epoch && h[0].StartReason == v1alpha1.StartHandover, nil
			})
			return leader
		})
	}
	phase("settled", func() string {
		time.Sleep(2 * time.Second) // the Service settles on the last leader
		return leaderOf(t, "web")
	})
	results := load.stop()
	history := labels.stop()

	for _, r := range load.report() {
		t.Logf("%-24s %5d requests, %3d failed, longest run of failures %5dms %s", r.phase, r.sent, r.failed, r.longestFailure.Milliseconds(), r.firstError)
	}
	if v := history.twoServingLabelled(); v != "" {
		t.Errorf("two pods that could take new requests carried the leader label: %s", v)
	}
	var stale int
	for _, r := range results {
		if r.err != nil {
			continue
		}
		if !history.labelledWithin(r.pod, r.sent.Add(-routingLag), r.sent.Add(r.took)) {
			t.Errorf("a request sent at %s was answered by %s, which had not held the label within %s", r.sent.Format("15:04:05.000"), r.pod, routingLag)
		} else if !history.labelledWithin(r.pod, r.sent, r.sent.Add(r.took)) {
			stale++
		}
	}
	t.Logf("%d of %d answers came from a pod whose label had gone within the last %s (the Service's routing lag)", stale, len(results), routingLag)
	if last := results[len(results)-1]; last.err != nil {
		t.Errorf("the last request failed: %v", last.err)
	}
}

// waitLabelled waits until one Ready pod of the Pods group app other than not carries
// the leader label, and returns its name.
func waitLabelled(t *testing.T, app, not string, timeout time.Duration) string {
	t.Helper()
	var name string
	eventually(t, "a Ready "+app+" pod with the leader label, other than "+not, timeout, func() (bool, error) {
		list, err := clientset.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: leaderLabel + "=" + app})
		if err != nil {
			return false, err
		}
		for _, p := range list.Items {
			if p.Name != not && p.DeletionTimestamp == nil && ready(&p) {
				name = p.Name
				return true, nil
			}
		}
		return false, nil
	})
	return name
}

// leaderOf is the pod the group's Lease names.
func leaderOf(t *testing.T, name string) string {
	t.Helper()
	l, err := clientset.CoordinationV1().Leases("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// leaseEpoch is the group's Lease's epoch: how many terms it has had.
func leaseEpoch(t *testing.T, name string) int32 {
	t.Helper()
	l, err := clientset.CoordinationV1().Leases("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Spec.LeaseTransitions == nil {
		return 0
	}
	return *l.Spec.LeaseTransitions
}

func podIP(t *testing.T, name string) string {
	t.Helper()
	p, err := clientset.CoreV1().Pods("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p.Status.PodIP
}

func post(url string) error {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Post(url, "", nil)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// load sends a request every 20ms, each on a connection of its own so that the
// Service picks a backend each time, and records who answered.
type load struct {
	mu      sync.Mutex
	results []result
	phases  []phaseMark
	start   time.Time
	done    chan struct{}
	wg      sync.WaitGroup
}

type result struct {
	sent time.Time
	took time.Duration
	pod  string
	err  error
}

type phaseMark struct {
	name     string
	from, to time.Time
}

func startLoad(url string) *load {
	l := &load{done: make(chan struct{}), start: time.Now()}
	// A short timeout: a request the Service blackholes counts as failed quickly, and
	// the next one is sent.
	client := &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-l.done:
				return
			case <-tick.C:
			}
			r := get(client, url)
			l.mu.Lock()
			l.results = append(l.results, r)
			l.mu.Unlock()
		}
	}()
	return l
}

// get sends one request and records who answered.
func get(client *http.Client, url string) result {
	r := result{sent: time.Now()}
	resp, err := client.Get(url)
	if err == nil {
		var b []byte
		b, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		r.pod = strings.TrimSpace(string(b))
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
	}
	r.took, r.err = time.Since(r.sent), err
	return r
}

// waitAnswer waits until a request sent after since is answered by pod.
func (l *load) waitAnswer(t *testing.T, pod string, since time.Time, timeout time.Duration) {
	t.Helper()
	eventually(t, "the Service answering from "+pod, timeout, func() (bool, error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		for i := len(l.results) - 1; i >= 0 && l.results[i].sent.After(since); i-- {
			if l.results[i].pod == pod {
				return true, nil
			}
		}
		return false, nil
	})
}

// mark ends a phase: it runs from the end of the one before (or the load's start).
func (l *load) mark(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	from := l.start
	if n := len(l.phases); n > 0 {
		from = l.phases[n-1].to
	}
	l.phases = append(l.phases, phaseMark{name: name, from: from, to: time.Now()})
}

func (l *load) stop() []result {
	close(l.done)
	l.wg.Wait()
	return l.results
}

type phaseReport struct {
	phase          string
	sent, failed   int
	longestFailure time.Duration
	firstError     string
}

// report counts, per phase, the requests sent, those that failed, and the longest run
// of consecutive failures: from the first failed request's send to the next
// success's send (or the phase's end).
func (l *load) report() []phaseReport {
	var out []phaseReport
	for _, p := range l.phases {
		r := phaseReport{phase: p.name}
		var runStart time.Time
		for _, res := range l.results {
			if res.sent.Before(p.from) || !res.sent.Before(p.to) {
				continue
			}
			r.sent++
			if res.err != nil {
				r.failed++
				if runStart.IsZero() {
					runStart = res.sent
				}
				if r.firstError == "" {
					r.firstError = "(first: " + res.err.Error() + ")"
				}
				continue
			}
			if !runStart.IsZero() {
				r.longestFailure = max(r.longestFailure, res.sent.Sub(runStart))
				runStart = time.Time{}
			}
		}
		if !runStart.IsZero() {
			r.longestFailure = max(r.longestFailure, p.to.Sub(runStart))
		}
		out = append(out, r)
	}
	return out
}

// labelHistory is what a watch saw of a Pods group's pods: per pod, when it carried the leader
// label and when it was Ready.
type labelHistory struct {
	mu     sync.Mutex
	events []podEvent
	stopFn func()
}

type podEvent struct {
	at       time.Time
	pod      string
	labelled bool
	// serving: Ready and not terminating, so that a Service sends it new requests.
	serving bool
	deleted bool
}

func watchLabels(t *testing.T, app string) *labelHistory {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w, err := clientset.CoreV1().Pods("default").Watch(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	h := &labelHistory{}
	done := make(chan struct{})
	h.stopFn = func() { cancel(); w.Stop(); <-done }
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			h.mu.Lock()
			h.events = append(h.events, podEvent{at: time.Now(), pod: p.Name,
				labelled: p.Labels[leaderLabel] == app, serving: ready(p) && p.DeletionTimestamp == nil, deleted: ev.Type == watch.Deleted})
			h.mu.Unlock()
		}
	}()
	return h
}

func (h *labelHistory) stop() *labelHistory { h.stopFn(); return h }

// twoServingLabelled replays the watch and names the first moment two pods that could
// take new requests (Ready, not terminating) carried the label, or "".
func (h *labelHistory) twoServingLabelled() string {
	state := map[string]podEvent{}
	for _, ev := range h.events {
		if ev.deleted {
			delete(state, ev.pod)
		} else {
			state[ev.pod] = ev
		}
		var both []string
		for name, s := range state {
			if s.labelled && s.serving {
				both = append(both, name)
			}
		}
		if len(both) > 1 {
			sort.Strings(both)
			return fmt.Sprintf("%v at %s", both, ev.at.Format("15:04:05.000"))
		}
	}
	return ""
}

// since is how long after old could no longer take new requests through the Service
// (it turned unready, began terminating, or lost the label, after from) the label
// reached next: the manager's part of a move's gap.
func (h *labelHistory) since(old, next string, from time.Time) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	lost, labelled := from, time.Time{}
	for _, ev := range h.events {
		if ev.at.Before(from) {
			continue
		}
		if ev.pod == old && (!ev.serving || !ev.labelled || ev.deleted) && lost == from {
			lost = ev.at
		}
		if ev.pod == next && ev.labelled && labelled.IsZero() {
			labelled = ev.at
		}
	}
	if labelled.IsZero() {
		return -1
	}
	return labelled.Sub(lost).Round(time.Millisecond)
}

// labelledWithin reports whether pod carried the label at some moment in [from, to]:
// at from (its last state before; before the watch's first event, its first state),
// or at any event up to to.
func (h *labelHistory) labelledWithin(pod string, from, to time.Time) bool {
	var atFrom *podEvent
	for i := range h.events {
		ev := &h.events[i]
		if ev.pod != pod || ev.at.After(to) {
			continue
		}
		if !ev.at.After(from) || atFrom == nil {
			atFrom = ev
		}
		if ev.at.After(from) && ev.labelled && !ev.deleted {
			return true
		}
	}
	return atFrom != nil && atFrom.labelled && !atFrom.deleted
}
