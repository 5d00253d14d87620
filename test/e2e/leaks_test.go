package e2e

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/election-manager/election-manager/internal/controller"
	"github.com/election-manager/election-manager/internal/election"
	"github.com/election-manager/election-manager/internal/testutil"
)

// Short lock timings for the leak test: presence Leases carry the lock's, and
// "long expired" is a few of its leaseDurations.
const (
	leakLeaseDuration = 2 * time.Second
	leakRenewDeadline = time.Second
	leakRetryPeriod   = 500 * time.Millisecond
	// collectedWithin is when a crashed instance's presence Lease must be gone after
	// its last renewal: the manager's bound (4 leaseDurations unchanged) plus one
	// collection period (a leaseDuration) and slack for a loaded machine.
	collectedWithin = 4*leakLeaseDuration + leakLeaseDuration + 2*time.Second
	// crashEvery paces the crashes, so that the bounds below mean something.
	crashEvery = 200 * time.Millisecond
)

// Two hundred manager instances start and crash (no release, no presence delete)
// while one manager writes status. The presence Leases they leave are deleted once
// long expired, and the writer's Lease tracker (records and tombstones) stays
// bounded throughout. Ten crashes are real SIGKILLs of the binary; the others are
// in-process instances that announce themselves with the manager's own presence
// config and are stopped without any cleanup, which a 2-core machine can afford
// two hundred of.
func TestCrashedManagersLeaveNothingBehind(t *testing.T) {
	const cycles, realKills = 200, 10
	c := newCluster(t)
	port := testutil.FreePort(t)
	lockTimings := []string{"--lock-lease-duration=" + leakLeaseDuration.String(),
		"--lock-renew-deadline=" + leakRenewDeadline.String(), "--lock-retry-period=" + leakRetryPeriod.String()}
	c.startManager("observer", false, append(lockTimings, fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", port), "--metrics-secure=false")...)
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	c.waitForPresence(1, 10*time.Second)

	peaks := c.watchPeaks(metricsURL)
	crasher := c.newCrasher()
	started := time.Now()
	for i := range cycles {
		next := time.Now().Add(crashEvery)
		id := fmt.Sprintf("crash-%03d", i)
		if i%(cycles/realKills) == 0 {
			m := c.startManager(id, false, lockTimings...)
			c.waitForPresenceOf(id, 10*time.Second)
			m.kill(t)
		} else {
			crasher.crash(id)
		}
		time.Sleep(time.Until(next))
	}
	took := time.Since(started)

	// Everything left behind goes: only the observer's presence Lease stays.
	c.waitForPresence(1, collectedWithin+5*time.Second)
	var seen, tombstones int
	poll(t, 2*leakLeaseDuration+5*time.Second, "the tombstones pruned", func() bool {
		seen, tombstones = trackerSize(t, metricsURL)
		return tombstones == 0
	})
	p := peaks.stop()
	// While crashes went on at one per crashEvery, at most those of the last
	// collectedWithin can have been left, plus the live observer and the one
	// crashing now.
	maxLeft := int(collectedWithin/crashEvery) + 2
	t.Logf("%d crashes (%d SIGKILLs) in %s; peaks: %d presence Leases (bound %d), %d tracked records, %d tombstones; at the end %d records, %d tombstones",
		cycles, realKills, took.Round(time.Second), p.presence, maxLeft, p.seen, p.tombstones, seen, tombstones)
	if p.presence > maxLeft {
		t.Errorf("%d presence Leases at once, want at most %d", p.presence, maxLeft)
	}
	// A tombstone lives one presence leaseDuration, pruned every collection period.
	if maxTombstones := int((2*leakLeaseDuration+2*time.Second)/crashEvery) + 1; p.tombstones > maxTombstones {
		t.Errorf("%d tombstones at once, want at most %d", p.tombstones, maxTombstones)
	}
	if p.seen > maxLeft+5 {
		t.Errorf("the tracker held %d records at once, want about the presence Leases (%d) and the lock", p.seen, maxLeft)
	}
}

// presenceLeases counts the presence Leases of the cluster's lock.
func (c *cluster) presenceLeases() (map[string]bool, error) {
	list, err := clientset.CoordinationV1().Leases(c.namespace).List(context.Background(), metav1.ListOptions{
		LabelSelector: controller.LabelPresence + "=" + c.lockName})
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, l := range list.Items {
		names[l.Name] = true
	}
	return names, nil
}

func (c *cluster) waitForPresence(n int, timeout time.Duration) {
	c.t.Helper()
	var names map[string]bool
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		var err error
		names, err = c.presenceLeases()
		return err == nil && len(names) == n, nil
	})
	if err != nil {
		c.t.Fatalf("%d presence Leases after %s, want %d", len(names), timeout, n)
	}
}

func (c *cluster) waitForPresenceOf(id string, timeout time.Duration) {
	c.t.Helper()
	name := controller.PresenceLeaseName(c.lockName, id)
	poll(c.t, timeout, "the presence Lease of "+id, func() bool {
		names, err := c.presenceLeases()
		return err == nil && names[name]
	})
}

// crasher runs in-process manager instances as far as their presence goes: an
// elector on the presence Lease, configured as the manager configures it, stopped
// without releasing or deleting anything, as a crash leaves it.
type crasher struct {
	c      *cluster
	leases *election.LeaseInformer
	ctx    context.Context
}

func (c *cluster) newCrasher() *crasher {
	ctx, cancel := context.WithCancel(context.Background())
	c.t.Cleanup(cancel)
	leases, err := election.NewLeaseInformer(clientset, nil, c.namespace)
	if err != nil {
		c.t.Fatal(err)
	}
	leases.Start(ctx)
	return &crasher{c: c, leases: leases, ctx: ctx}
}

func (cr *crasher) crash(id string) {
	t := cr.c.t
	t.Helper()
	e, err := election.New(election.Config{
		Lease:         types.NamespacedName{Namespace: cr.c.namespace, Name: controller.PresenceLeaseName(cr.c.lockName, id)},
		Identity:      id,
		LeaseDuration: leakLeaseDuration, RenewDeadline: leakRenewDeadline, RetryPeriod: leakRetryPeriod,
		Labels:          map[string]string{controller.LabelPresence: cr.c.lockName},
		Annotations:     controller.PresenceAnnotations([]string{cr.c.namespace}, ""),
		ReleaseOnCancel: false, // a crash releases nothing
	}, clientset.CoordinationV1(), cr.leases, election.Callbacks{}, election.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e.Start(cr.ctx)
	poll(t, 10*time.Second, id+" announced", e.IsLeader)
	e.Stop()
}

// peaks records the highest presence Lease count and tracker sizes seen.
type peaks struct {
	mu                         sync.Mutex
	presence, seen, tombstones int
	done                       chan struct{}
	finished                   sync.WaitGroup
}

func (c *cluster) watchPeaks(metricsURL string) *peaks {
	p := &peaks{done: make(chan struct{})}
	p.finished.Add(1)
	go func() {
		defer p.finished.Done()
		for {
			select {
			case <-p.done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			names, err := c.presenceLeases()
			seen, gone, ok := scrapeTracker(metricsURL)
			p.mu.Lock()
			if err == nil {
				p.presence = max(p.presence, len(names))
			}
			if ok {
				p.seen, p.tombstones = max(p.seen, seen), max(p.tombstones, gone)
			}
			p.mu.Unlock()
		}
	}()
	return p
}

func (p *peaks) stop() *peaks {
	close(p.done)
	p.finished.Wait()
	return p
}

var trackerMetric = regexp.MustCompile(`(?m)^election_manager_lease_tracker_entries\{state="(records|tombstones)"\} (\d+)$`)

// scrapeTracker reads the manager's Lease tracker size from its metrics.
func scrapeTracker(url string) (seen, tombstones int, ok bool) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, 0, false
	}
	defer resp.Body.Close()
	found := 0
	for _, m := range trackerMetric.FindAllStringSubmatch(readAll(resp), -1) {
		n, _ := strconv.Atoi(m[2])
		if m[1] == "records" {
			seen = n
		} else {
			tombstones = n
		}
		found++
	}
	return seen, tombstones, found == 2
}

func trackerSize(t *testing.T, url string) (seen, tombstones int) {
	t.Helper()
	var ok bool
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) {
			seen, tombstones, ok = scrapeTracker(url)
			return ok, nil
		})
	if err != nil {
		t.Fatalf("no election_manager_lease_tracker_entries in %s", url)
	}
	return seen, tombstones
}
