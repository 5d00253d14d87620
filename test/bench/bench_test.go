// Package bench is the end-to-end scale benchmark (make bench-e2e): three manager
// processes on a local kube-apiserver + etcd, each a candidate in every one of N
// LeaderGroups, and beside them the same workload done by three processes of plain
// client-go electors (one LeaderElector per group per process). It prints a table
// and asserts nothing.
//
// Everything is measured from outside the candidates: a watch on the Leases and one
// on the LeaderGroups (arrival times), kube-apiserver's own apiserver_request_total,
// the managers' controller_runtime_reconcile_total, and /proc. A run of one size:
//
//  1. all led: the groups are created (client-go: its processes start) until every
//     Lease has a holder, and (ours) every status names it;
//  2. steady: a window of BENCH_STEADY with nothing changing: terms begun in it
//     (leaderships lost), requests per group per minute by verb and resource,
//     status writes and reconciles, CPU and RSS of the candidate processes, of
//     kube-apiserver and of etcd;
//  3. graceful stop (SIGTERM) of the process leading most groups: for each group it
//     led, Lease released -> another holder, and that holder -> status.holder;
//  4. SIGKILL of the process now leading most groups: its last renewal (the
//     renewTime it wrote) -> another holder, against leaseDuration.
//
// It is a Go test rather than a program under hack/ because it needs what the tests
// already have: the control plane, processes killed with the test, binaries built
// from the tree. Without BENCH_E2E=1 it runs as a smoke test inside make test
// (5 groups, a 3-second window, short timings), which keeps it compiling and working.
//
// Knobs (environment): BENCH_E2E=1; BENCH_GROUPS=100,1000 (sizes); BENCH_IMPLS=
// ours,client-go; BENCH_STEADY=2m; BENCH_TIMINGS=6s/3s/1s (default: that below 3,000
// groups, 15s/10s/2s from 3,000); BENCH_PROFILE=dir (CPU profiles of a manager and
// of kube-apiserver over the steady window, ours only, the members' logs, and a
// timeline of Lease writes and terms per second).
package bench

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/cmd/manager/app"
	"github.com/election-manager/election-manager/internal/testutil"
)

const groupPrefix = "g-"

var (
	cp       *testutil.ControlPlane
	admin    kubernetes.Interface
	k8s      client.WithWatch
	binaries struct{ manager, clientGo string }
	// candidates is the candidate processes' kubeconfig (candidateKubeconfig).
	candidates string
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, cleanup, err := testutil.TempDir("election-manager-bench-")
		if err == nil {
			defer cleanup()
			err = setUp(dir)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		defer func() { _ = cp.Stop() }()
		return m.Run()
	}())
}

func setUp(dir string) error {
	var err error
	if binaries.manager, err = testutil.BuildBinary(dir, "cmd/manager"); err != nil {
		return err
	}
	if binaries.clientGo, err = testutil.BuildBinary(dir, "test/bench/testdata/clientgo-electors"); err != nil {
		return err
	}
	if cp, err = testutil.StartControlPlane(); err != nil {
		return err
	}
	// The observer is not throttled: it must not fall behind the electors.
	cfg := rest.CopyConfig(cp.Config)
	cfg.QPS, cfg.Burst = -1, 0
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	if admin, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	scheme, err := app.NewScheme()
	if err != nil {
		return err
	}
	cfg = rest.CopyConfig(cp.Config)
	cfg.QPS, cfg.Burst = -1, 0
	if k8s, err = client.NewWithWatch(cfg, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	candidates, err = candidateKubeconfig(dir)
	return err
}

// timings are a run's leaseDuration/renewDeadline/retryPeriod, for groups and
// for the managers' own lock and presence alike.
type timings struct{ lease, renew, retry time.Duration }

func (t timings) String() string { return fmt.Sprintf("%s/%s/%s", t.lease, t.renew, t.retry) }

func parseTimings(s string) (timings, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return timings{}, fmt.Errorf("timings %q: want leaseDuration/renewDeadline/retryPeriod", s)
	}
	var d [3]time.Duration
	for i, p := range parts {
		var err error
		if d[i], err = time.ParseDuration(p); err != nil {
			return timings{}, fmt.Errorf("timings %q: %w", s, err)
		}
	}
	return timings{d[0], d[1], d[2]}, nil
}

// config is what the environment asks for.
type config struct {
	full    bool
	groups  []int
	impls   []string
	steady  time.Duration
	timings func(groups int) timings
	profile string
}

func configFromEnv(t *testing.T) config {
	c := config{full: os.Getenv("BENCH_E2E") == "1", impls: []string{"ours", "client-go"}, profile: os.Getenv("BENCH_PROFILE")}
	if c.full {
		c.groups, c.steady = []int{100, 1000}, 2*time.Minute
		c.timings = func(n int) timings {
			if n >= 3000 {
				return timings{15 * time.Second, 10 * time.Second, 2 * time.Second}
			}
			return timings{6 * time.Second, 3 * time.Second, time.Second}
		}
	} else {
		c.groups, c.steady = []int{5}, 3*time.Second
		c.timings = func(int) timings { return timings{4 * time.Second, 2 * time.Second, time.Second} }
	}
	if v := os.Getenv("BENCH_GROUPS"); v != "" {
		c.groups = nil
		for _, s := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 1 {
				t.Fatalf("BENCH_GROUPS=%q: want sizes like 100,1000", v)
			}
			c.groups = append(c.groups, n)
		}
	}
	if v := os.Getenv("BENCH_IMPLS"); v != "" {
		c.impls = strings.Split(v, ",")
	}
	if v := os.Getenv("BENCH_STEADY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("BENCH_STEADY=%q: %v", v, err)
		}
		c.steady = d
	}
	if v := os.Getenv("BENCH_TIMINGS"); v != "" {
		tm, err := parseTimings(v)
		if err != nil {
			t.Fatal(err)
		}
		c.timings = func(int) timings { return tm }
	}
	return c
}

func TestBenchE2E(t *testing.T) {
	c := configFromEnv(t)
	var results []*result
	for _, n := range c.groups {
		for _, impl := range c.impls {
			if impl != "ours" && impl != "client-go" {
				t.Fatalf("BENCH_IMPLS: unknown %q (ours, client-go)", impl)
			}
			r := &run{impl: impl, groups: n, timings: c.timings(n), steady: c.steady, profile: c.profile}
			t.Run(fmt.Sprintf("%s-%d", impl, n), func(t *testing.T) {
				results = append(results, r.do(t))
			})
		}
	}
	printTable(os.Stdout, c, results)
}

// run is one implementation at one size.
type run struct {
	impl      string
	groups    int
	timings   timings
	steady    time.Duration
	profile   string
	namespace string
	names     []string
	members   []*member
	obs       *observer
}

func (r *run) ours() bool { return r.impl == "ours" }

func (r *run) do(t *testing.T) *result {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	res := &result{impl: r.impl, groups: r.groups, timings: r.timings, steady: r.steady}
	ns, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.namespace = ns.Name
	t.Cleanup(func() { r.cleanUp(t) })
	for i := range r.groups {
		r.names = append(r.names, fmt.Sprintf("%s%05d", groupPrefix, i))
	}
	if r.obs, err = observe(ctx, admin, k8s, r.namespace, groupPrefix, r.ours()); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	if r.ours() {
		for i := range 3 {
			r.members = append(r.members, startManager(t, r, fmt.Sprintf("manager-%d", i)))
		}
		start = time.Now()
		r.createGroups(ctx, t)
	} else {
		var wg sync.WaitGroup
		r.members = make([]*member, 3)
		for i := range 3 {
			wg.Add(1)
			go func() { defer wg.Done(); r.members[i] = startClientGo(t, r, fmt.Sprintf("clientgo-%d", i)) }()
		}
		wg.Wait()
	}
	if led, ok := r.poll(t, 5*time.Minute, "every group led", func() (time.Time, bool) { return r.obs.allLed(r.names) }); ok {
		res.allLed = led.Sub(start)
	} else {
		res.incomplete = true
	}
	if r.ours() {
		if shown, ok := r.poll(t, 2*time.Minute, "every group's status naming its holder", func() (time.Time, bool) { return r.obs.allShown(r.names) }); ok {
			res.allShown = shown.Sub(start)
		} else {
			res.incomplete = true
		}
	}
	t.Logf("%s: all %d groups led after %s", r.impl, r.groups, res.allLed.Round(time.Millisecond))

	r.steadyState(ctx, t, res)
	r.gracefulStop(ctx, t, res)
	r.crash(t, res)
	return res
}

// createGroups creates the run's groups, 16 at a time.
func (r *run) createGroups(ctx context.Context, t *testing.T) {
	names := make(chan string)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range names {
				g := &v1alpha1.LeaderGroup{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: r.namespace}}
				g.Spec.LeaseDuration = metav1.Duration{Duration: r.timings.lease}
				g.Spec.RenewDeadline = metav1.Duration{Duration: r.timings.renew}
				g.Spec.RetryPeriod = metav1.Duration{Duration: r.timings.retry}
				if err := k8s.Create(ctx, g); err != nil {
					t.Errorf("creating %s: %v", name, err)
				}
			}
		}()
	}
	for _, n := range r.names {
		names <- n
	}
	close(names)
	wg.Wait()
}

// poll waits until cond holds and returns the time it reports; false when it did
// not hold within timeout. The benchmark asserts nothing: it records what it saw.
func (r *run) poll(t *testing.T, timeout time.Duration, what string, cond func() (time.Time, bool)) (time.Time, bool) {
	t.Helper()
	var at time.Time
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		var ok bool
		at, ok = cond()
		return ok, nil
	})
	if err != nil {
		t.Logf("%s %d: %s did not happen within %s", r.impl, r.groups, what, timeout)
		return time.Time{}, false
	}
	return at, true
}

// snapshot is what the steady window and the phases count from.
type snapshot struct {
	at         time.Time
	requests   counters
	conflicts  counters
	reconciles []float64
	cpu        []time.Duration // members', then kube-apiserver, then etcd
}

func (r *run) snap(ctx context.Context, t *testing.T) snapshot {
	t.Helper()
	s := snapshot{at: time.Now()}
	var err error
	if s.requests, s.conflicts, err = apiRequests(ctx, admin); err != nil {
		t.Fatal(err)
	}
	apiserver, etcd := controlPlanePIDs(cp.Config.Host)
	for _, m := range r.members {
		if m.metrics != "" && !m.Exited() {
			n, err := reconciles(ctx, m.metrics)
			if err != nil {
				t.Fatal(err)
			}
			s.reconciles = append(s.reconciles, n)
		}
	}
	for _, pid := range append(r.pids(), apiserver, etcd) {
		d, _ := cpuTime(pid)
		s.cpu = append(s.cpu, d)
	}
	return s
}

func (r *run) pids() []int {
	var out []int
	for _, m := range r.members {
		if !m.Exited() {
			out = append(out, m.Pid())
		}
	}
	return out
}

func (r *run) steadyState(ctx context.Context, t *testing.T, res *result) {
	var profiles sync.WaitGroup
	if r.profile != "" && r.ours() {
		profiles.Add(1)
		go func() { defer profiles.Done(); r.takeProfiles(t, min(r.steady, 30*time.Second)) }()
	}
	s0 := r.snap(ctx, t)
	time.Sleep(r.steady) // the measurement window itself
	s1 := r.snap(ctx, t)
	profiles.Wait()
	window := s1.at.Sub(s0.at)
	res.lost = r.obs.termsBetween(s0.at, s1.at)
	res.sentPerSec = r.obs.sentPerSecond(s0.at, s1.at)
	perGroupMin := float64(r.groups) * window.Minutes()
	res.requests = counters{}
	for k, v := range s1.requests.minus(s0.requests) {
		res.requests[k] = v / perGroupMin
	}
	res.statusPerMin = s1.requests.minus(s0.requests)["PATCH leadergroups/status"] / window.Minutes()
	for i := range s1.reconciles {
		res.reconcilesPerSec += (s1.reconciles[i] - s0.reconciles[i]) / window.Seconds()
	}
	pct := func(i int) float64 { return 100 * (s1.cpu[i] - s0.cpu[i]).Seconds() / window.Seconds() }
	for i := range r.members {
		res.cpuPct += pct(i)
		rss, _ := rssMiB(r.members[i].Pid())
		res.rssMiB = max(res.rssMiB, rss)
	}
	res.apiserverPct, res.etcdPct = pct(len(r.members)), pct(len(r.members)+1)
	if r.ours() {
		res.hasStatus = true
	}
}

// gracefulStop SIGTERMs the member leading most groups.
func (r *run) gracefulStop(ctx context.Context, t *testing.T, res *result) {
	victim, led := r.leadingMost()
	if r.ours() {
		if lock, err := admin.CoordinationV1().Leases(r.namespace).Get(ctx, "lock", metav1.GetOptions{}); err == nil && lock.Spec.HolderIdentity != nil {
			t.Logf("stopping %s (leads %d groups); the status writer is %s", victim.id, len(led), *lock.Spec.HolderIdentity)
		}
	}
	before := r.snap(ctx, t)
	stopAt := time.Now()
	victim.stop(t)
	r.poll(t, 2*time.Minute, "a new holder for every group the stopped member led", func() (time.Time, bool) {
		for _, name := range led {
			if _, _, ok := r.obs.handedOn(name, victim.id, stopAt); !ok {
				return time.Time{}, false
			}
		}
		return time.Time{}, true
	})
	if r.ours() {
		r.poll(t, 2*time.Minute, "status naming every new holder", func() (time.Time, bool) {
			for _, name := range led {
				_, next, _ := r.obs.handedOn(name, victim.id, stopAt)
				if _, ok := r.obs.shownAt(name, next.holder, stopAt); !ok {
					return time.Time{}, false
				}
			}
			return time.Time{}, true
		})
	}
	for _, name := range led {
		left, next, _ := r.obs.handedOn(name, victim.id, stopAt)
		if next.at.IsZero() {
			res.incomplete = true
			continue
		}
		res.released = append(res.released, next.at.Sub(left.at))
		if left.holder == "" { // released, not taken after expiry
			res.stopSpan = max(res.stopSpan, left.at.Sub(stopAt))
			res.releaseWrite = append(res.releaseWrite, left.at.Sub(left.sent))
			res.takerReact = append(res.takerReact, next.sent.Sub(left.at))
			res.takerWrite = append(res.takerWrite, next.at.Sub(next.sent))
		}
		if shown, ok := r.obs.shownAt(name, next.holder, stopAt); ok {
			res.shown = append(res.shown, shown.Sub(next.at))
		} else if r.ours() {
			res.incomplete = true
		}
	}
	after := r.snap(ctx, t)
	if len(led) > 0 {
		res.statusPerTransition = after.requests.minus(before.requests)["PATCH leadergroups/status"] / float64(len(led))
		res.refusedPerTransition = after.conflicts.minus(before.conflicts)["PUT leases"] / float64(len(led))
	}
}

// crash SIGKILLs the member now leading most groups.
func (r *run) crash(t *testing.T, res *result) {
	victim, led := r.leadingMost()
	killAt := time.Now()
	victim.kill(t)
	r.poll(t, 3*r.timings.lease+2*time.Minute, "a new holder for every group the killed member led", func() (time.Time, bool) {
		for _, name := range led {
			if _, _, ok := r.obs.handedOn(name, victim.id, killAt); !ok {
				return time.Time{}, false
			}
		}
		return time.Time{}, true
	})
	for _, name := range led {
		_, next, ok := r.obs.handedOn(name, victim.id, killAt)
		if !ok {
			res.incomplete = true
			continue
		}
		res.crashed = append(res.crashed, next.at.Sub(r.obs.lastRenewal(name, victim.id)))
	}
}

// leadingMost is the running member that holds most groups' Leases, and those groups.
func (r *run) leadingMost() (*member, []string) {
	holders := r.obs.holders()
	byID := map[string][]string{}
	for _, name := range r.names {
		byID[holders[name]] = append(byID[holders[name]], name)
	}
	var best *member
	for _, m := range r.members {
		if !m.Exited() && (best == nil || len(byID[m.id]) > len(byID[best.id])) {
			best = m
		}
	}
	led := byID[best.id]
	sort.Strings(led)
	return best, led
}

// cleanUp stops the members still running and deletes what the run created, so
// the next run starts on a quiet API server.
func (r *run) cleanUp(t *testing.T) {
	for _, m := range r.members {
		if m != nil && !m.Exited() {
			m.stop(t)
		}
	}
	if r.profile != "" {
		if r.obs != nil {
			if err := os.WriteFile(fmt.Sprintf("%s/timeline-%s-%d.txt", r.profile, r.impl, r.groups), []byte(r.obs.timeline()), 0o644); err != nil {
				t.Log(err)
			}
		}
		for _, m := range r.members {
			if m != nil {
				if err := os.WriteFile(fmt.Sprintf("%s/%s-%s-%d.log", r.profile, m.id, r.impl, r.groups), []byte(m.Output()), 0o644); err != nil {
					t.Log(err)
				}
			}
		}
	}
	ctx := context.Background()
	if r.ours() {
		_ = k8s.DeleteAllOf(ctx, &v1alpha1.LeaderGroup{}, client.InNamespace(r.namespace))
	}
	_ = admin.CoordinationV1().Leases(r.namespace).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
}

// takeProfiles writes CPU profiles of the first manager and of kube-apiserver over
// d into the BENCH_PROFILE folder.
func (r *run) takeProfiles(t *testing.T, d time.Duration) {
	secs := strconv.Itoa(int(d.Seconds()))
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		m := r.members[0]
		if err := download("http://"+m.pprof+"/debug/pprof/profile?seconds="+secs, r.profilePath("manager")); err != nil {
			t.Logf("profiling %s: %v", m.id, err)
		}
	}()
	go func() {
		defer wg.Done()
		raw, err := admin.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").Param("seconds", secs).
			Timeout(d + time.Minute).DoRaw(context.Background())
		if err == nil {
			err = os.WriteFile(r.profilePath("kube-apiserver"), raw, 0o644)
		}
		if err != nil {
			t.Logf("profiling kube-apiserver: %v", err)
		}
	}()
	wg.Wait()
}

func (r *run) profilePath(what string) string {
	return fmt.Sprintf("%s/%s-%s-%d.pprof", r.profile, what, r.impl, r.groups)
}
