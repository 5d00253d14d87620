package election

// BenchmarkElection compares this package with plain client-go LeaderElectors (one
// per candidate and group, as in client-go's examples/leader-election) on the local
// control plane, with 3 candidates per group at leaseDuration 6s, renewDeadline 3s,
// retryPeriod 1s. It prints a table and asserts nothing. Run it alone:
//
//	go test ./internal/election -run '^$' -bench . -benchtime 1x
//
// Each candidate is a simulated process: its own client (no client-side rate limit,
// or client-go's 100 electors per process would queue behind QPS 5), its own fault
// proxy and, for ours, its own LeaseInformer and Registry. Measured:
//   - released -> new holder: a leader stops gracefully (release); time between the
//     watch events of the released version and of the next holder's version;
//   - crashed -> new holder: the process leading most groups vanishes (its proxy
//     refuses, its electors stop without being able to release); time from the cut
//     to the watch event of the next holder's version;
//   - lease requests per group per minute, by verb, from kube-apiserver's
//     apiserver_request_total over a 20s steady window;
//   - heap in use (after GC) and CPU (getrusage) of this test process, and
//     kube-apiserver's CPU (/proc) over the same window.
//
// Rows: ours and client-go at 100 groups (all measures); ours at 1,000 groups at
// 6s/3s/1s (1,000 renewals/s) and at the core clients' default 15s/10s/2s (steady
// state only; "lost" counts leaderships lost in the window, which would show an
// overloaded API server). BENCH_LARGE=N changes the large size;
// BENCH_CLIENTGO_LARGE=1 adds client-go at that size and the default timings (3,000
// polling electors: slow on 2 cores).

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"

	"github.com/election-manager/election-manager/internal/leaserecord"
	"github.com/election-manager/election-manager/internal/testutil"
)

var (
	benchTimings   = Config{LeaseDuration: 6 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: time.Second}
	defaultTimings = Config{LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}
)

const (
	benchCandidates = 3
	benchWindow     = 20 * time.Second
)

// benchProcess is one simulated process running one candidate per group.
type benchProcess interface {
	join(key types.NamespacedName)
	release(key types.NamespacedName) // graceful stop with release; blocks
	leads(key types.NamespacedName) bool
	crash()        // the proxy refuses, then every elector stops
	losses() int64 // OnStoppedLeading calls so far
	close()
}

type benchResult struct {
	name, groups, timings         string
	released, crashed             []time.Duration
	requests                      map[string]float64 // per group per minute
	heapMiB, cpuPct, apiserverPct float64
	lost                          int64 // leaderships lost during the steady window
}

func BenchmarkElection(b *testing.B) {
	large := 1000
	if v, err := strconv.Atoi(os.Getenv("BENCH_LARGE")); err == nil && v > 0 {
		large = v
	}
	var results []benchResult
	for range b.N {
		results = append(results,
			runBench(b, "ours", 100, benchTimings, true, newOursProcess),
			runBench(b, "client-go", 100, benchTimings, true, newClientGoProcess),
			runBench(b, "ours", large, benchTimings, false, newOursProcess),
			runBench(b, "ours", large, defaultTimings, false, newOursProcess))
		if os.Getenv("BENCH_CLIENTGO_LARGE") == "1" {
			results = append(results, runBench(b, "client-go", large, defaultTimings, false, newClientGoProcess))
		}
	}
	printBench(results)
}

func runBench(b *testing.B, name string, groups int, timings Config, latency bool, newProcess func(b *testing.B, id, ns string, timings Config) benchProcess) benchResult {
	ctx := context.Background()
	ns := "bench-" + rand.String(6)
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	res := benchResult{name: name, groups: strconv.Itoa(groups),
		timings: fmt.Sprintf("%s/%s/%s", timings.LeaseDuration, timings.RenewDeadline, timings.RetryPeriod)}
	keys := make([]types.NamespacedName, groups)
	for i := range keys {
		keys[i] = types.NamespacedName{Namespace: ns, Name: fmt.Sprintf("group-%04d", i)}
	}
	heap0 := heapInUse()
	procs := make([]benchProcess, benchCandidates)
	for i := range procs {
		procs[i] = newProcess(b, fmt.Sprintf("%s-%d", name, i), ns, timings)
		for _, k := range keys {
			procs[i].join(k)
		}
	}
	defer func() {
		for _, p := range procs {
			p.close()
		}
	}()
	leaderOf := func(k types.NamespacedName) int {
		found := -1
		for i, p := range procs {
			if p.leads(k) {
				found = i
			}
		}
		return found
	}
	eventually(b, 2*time.Minute, "every group to have a leader", func() bool {
		for _, k := range keys {
			if leaderOf(k) < 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(2 * timings.RetryPeriod) // settle: a measurement window, not synchronisation

	// Steady state: requests, CPU, heap.
	losses := func() (n int64) {
		for _, p := range procs {
			n += p.losses()
		}
		return n
	}
	// The scrape takes a while: count the window from the middle of one to the middle
	// of the other.
	t0 := time.Now()
	req0, cpu0, api0, lost0 := leaseRequests(b), cpuTime(), apiserverCPU(), losses()
	t0 = t0.Add(time.Since(t0) / 2)
	time.Sleep(benchWindow)
	t1 := time.Now()
	req1, cpu1, api1 := leaseRequests(b), cpuTime(), apiserverCPU()
	t1 = t1.Add(time.Since(t1) / 2)
	res.lost = losses() - lost0
	elapsed := t1.Sub(t0)
	res.requests = map[string]float64{}
	for verb, n := range req1 {
		res.requests[verb] = (n - req0[verb]) / float64(groups) / elapsed.Minutes()
	}
	res.cpuPct = 100 * (cpu1 - cpu0).Seconds() / elapsed.Seconds()
	if api0 >= 0 && api1 >= 0 {
		res.apiserverPct = 100 * (api1 - api0).Seconds() / elapsed.Seconds()
	} else {
		res.apiserverPct = -1
	}
	res.heapMiB = float64(heapInUse()-heap0) / (1 << 20)
	if !latency {
		return res
	}

	w := startBenchWatch(b, ns)
	defer w.stop()

	// Released -> new holder, one group every 20ms.
	var wg sync.WaitGroup
	for _, k := range keys {
		p := procs[leaderOf(k)]
		wg.Add(1)
		go func() { defer wg.Done(); p.release(k) }()
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	eventually(b, time.Minute, "a new holder for every released group", func() bool {
		for _, k := range keys {
			if _, ok := w.afterRelease(k.Name); !ok {
				return false
			}
		}
		return true
	})
	for _, k := range keys {
		d, _ := w.afterRelease(k.Name)
		res.released = append(res.released, d)
	}

	// Crashed -> new holder: the process leading the most groups vanishes.
	count := make([]int, len(procs))
	for _, k := range keys {
		if i := leaderOf(k); i >= 0 {
			count[i]++
		}
	}
	victim := 0
	for i := range count {
		if count[i] > count[victim] {
			victim = i
		}
	}
	var crashed []types.NamespacedName
	for _, k := range keys {
		if leaderOf(k) == victim {
			crashed = append(crashed, k)
		}
	}
	cutAt := time.Now()
	procs[victim].crash()
	eventually(b, 2*time.Minute, "a new holder for every crashed group", func() bool {
		for _, k := range crashed {
			if _, ok := w.newHolderAfter(k.Name, cutAt); !ok {
				return false
			}
		}
		return true
	})
	for _, k := range crashed {
		at, _ := w.newHolderAfter(k.Name, cutAt)
		res.crashed = append(res.crashed, at.Sub(cutAt))
	}
	return res
}

// oursProcess runs this package's electors in a Registry.
type oursProcess struct {
	timings Config
	lost    atomic.Int64
	proxy   *testutil.FaultProxy
	reg     *Registry
	cancel  context.CancelFunc
	id      string
	leading sync.Map // key string -> *atomic.Bool
}

func newOursProcess(b *testing.B, id, ns string, timings Config) benchProcess {
	cfg, proxy, err := testutil.ProxyConfig(unthrottled(controlPlane.Config))
	if err != nil {
		b.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	leases, err := NewLeaseInformer(client, nil, ns)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	leases.Start(ctx)
	return &oursProcess{timings: timings, proxy: proxy, cancel: cancel, id: id, reg: NewRegistry(client.CoordinationV1(), leases, logr.Discard(), Options{})}
}

func (p *oursProcess) join(key types.NamespacedName) {
	cfg := p.timings
	cfg.Lease, cfg.Identity, cfg.ReleaseOnCancel = key, p.id, true
	flag := &atomic.Bool{}
	p.leading.Store(key.String(), flag)
	if _, err := p.reg.Ensure(key.String(), cfg, Callbacks{
		OnStartedLeading: func(int32) { flag.Store(true) },
		OnStoppedLeading: func() { flag.Store(false); p.lost.Add(1) },
	}); err != nil {
		panic(err)
	}
}

func (p *oursProcess) release(key types.NamespacedName) { p.reg.Stop(key.String()) }

func (p *oursProcess) leads(key types.NamespacedName) bool {
	v, ok := p.leading.Load(key.String())
	return ok && v.(*atomic.Bool).Load()
}

func (p *oursProcess) crash() {
	p.proxy.SetMode(testutil.Refuse)
	p.reg.StopAll(time.Time{})
}

func (p *oursProcess) losses() int64 { return p.lost.Load() }

func (p *oursProcess) close() {
	p.reg.StopAll(time.Time{})
	p.cancel()
	p.proxy.Close()
}

// clientGoProcess runs one client-go LeaderElector per group, as the example does.
type clientGoProcess struct {
	timings Config
	lost    atomic.Int64
	proxy   *testutil.FaultProxy
	client  kubernetes.Interface
	id      string
	mu      sync.Mutex
	elects  map[string]*clientGoElector
}

type clientGoElector struct {
	cancel  context.CancelFunc
	done    chan struct{}
	leading atomic.Bool
}

func newClientGoProcess(b *testing.B, id, _ string, timings Config) benchProcess {
	cfg, proxy, err := testutil.ProxyConfig(unthrottled(controlPlane.Config))
	if err != nil {
		b.Fatal(err)
	}
	return &clientGoProcess{timings: timings, proxy: proxy, client: kubernetes.NewForConfigOrDie(cfg), id: id, elects: map[string]*clientGoElector{}}
}

func (p *clientGoProcess) join(key types.NamespacedName) {
	e := &clientGoElector{done: make(chan struct{})}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
			Client:     p.client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: p.id},
		},
		ReleaseOnCancel: true,
		LeaseDuration:   p.timings.LeaseDuration,
		RenewDeadline:   p.timings.RenewDeadline,
		RetryPeriod:     p.timings.RetryPeriod,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) { e.leading.Store(true) },
			OnStoppedLeading: func() {
				// client-go calls this on every exit, led or not: count real losses only.
				if e.leading.Swap(false) {
					p.lost.Add(1)
				}
			},
		},
	})
	if err != nil {
		panic(err)
	}
	var ctx context.Context
	ctx, e.cancel = context.WithCancel(klog.NewContext(context.Background(), logr.Discard()))
	p.mu.Lock()
	p.elects[key.String()] = e
	p.mu.Unlock()
	go func() { defer close(e.done); le.Run(ctx) }()
}

func (p *clientGoProcess) release(key types.NamespacedName) {
	p.mu.Lock()
	e := p.elects[key.String()]
	delete(p.elects, key.String())
	p.mu.Unlock()
	e.cancel()
	<-e.done
}

func (p *clientGoProcess) leads(key types.NamespacedName) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.elects[key.String()]
	return e != nil && e.leading.Load()
}

func (p *clientGoProcess) crash() {
	p.proxy.SetMode(testutil.Refuse)
	p.stopAll()
}

func (p *clientGoProcess) stopAll() {
	p.mu.Lock()
	all := p.elects
	p.elects = map[string]*clientGoElector{}
	p.mu.Unlock()
	for _, e := range all {
		e.cancel()
	}
	for _, e := range all {
		<-e.done
	}
}

func (p *clientGoProcess) losses() int64 { return p.lost.Load() }

func (p *clientGoProcess) close() {
	p.stopAll()
	p.proxy.Close()
}

// benchWatch records when each version of each Lease in a namespace arrived.
type benchWatch struct {
	w      watch.Interface
	mu     sync.Mutex
	events map[string][]benchEvent
	done   chan struct{}
}

type benchEvent struct {
	at     time.Time
	holder string
}

func startBenchWatch(b *testing.B, ns string) *benchWatch {
	leases := admin.CoordinationV1().Leases(ns)
	list, err := leases.List(context.Background(), metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	w, err := leases.Watch(context.Background(), metav1.ListOptions{ResourceVersion: list.ResourceVersion})
	if err != nil {
		b.Fatal(err)
	}
	bw := &benchWatch{w: w, events: map[string][]benchEvent{}, done: make(chan struct{})}
	go func() {
		defer close(bw.done)
		for ev := range w.ResultChan() {
			if l, ok := ev.Object.(*coordinationv1.Lease); ok {
				bw.mu.Lock()
				bw.events[l.Name] = append(bw.events[l.Name], benchEvent{at: time.Now(), holder: leaserecord.Holder(l)})
				bw.mu.Unlock()
			}
		}
	}()
	return bw
}

func (bw *benchWatch) stop() { bw.w.Stop(); <-bw.done }

// afterRelease is the time from the first released version to the next held one.
func (bw *benchWatch) afterRelease(name string) (time.Duration, bool) {
	bw.mu.Lock()
	defer bw.mu.Unlock()
	var released time.Time
	for _, ev := range bw.events[name] {
		switch {
		case released.IsZero() && ev.holder == "":
			released = ev.at
		case !released.IsZero() && ev.holder != "":
			return ev.at.Sub(released), true
		}
	}
	return 0, false
}

// newHolderAfter is when a version naming another holder than the one at t arrived.
func (bw *benchWatch) newHolderAfter(name string, t time.Time) (time.Time, bool) {
	bw.mu.Lock()
	defer bw.mu.Unlock()
	old := ""
	for _, ev := range bw.events[name] {
		if !ev.at.After(t) {
			old = ev.holder
			continue
		}
		if ev.holder != "" && ev.holder != old {
			return ev.at, true
		}
	}
	return time.Time{}, false
}

// leaseRequests sums apiserver_request_total for leases by verb.
func leaseRequests(b *testing.B) map[string]float64 {
	raw, err := admin.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") || !strings.Contains(line, `resource="leases"`) {
			continue
		}
		i := strings.Index(line, `verb="`)
		j := strings.LastIndexByte(line, ' ')
		if i < 0 || j < 0 {
			continue
		}
		verb := line[i+6:]
		verb = verb[:strings.IndexByte(verb, '"')]
		n, err := strconv.ParseFloat(line[j+1:], 64)
		if err == nil {
			out[verb] += n
		}
	}
	return out
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// apiserverCPU reads kube-apiserver's CPU time from /proc (-1 if not found): the
// process whose command line carries our control plane's port.
func apiserverCPU() time.Duration {
	u, err := url.Parse(controlPlane.Config.Host)
	if err != nil {
		return -1
	}
	port := u.Port()
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		cmd, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err != nil || !strings.Contains(string(cmd), "kube-apiserver") || !strings.Contains(string(cmd), "secure-port="+port) {
			continue
		}
		stat, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			return -1
		}
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(utime+stime) * (time.Second / 100) // USER_HZ
	}
	return -1
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(p*float64(len(s)-1)+0.5)]
}

func printBench(results []benchResult) {
	lat := func(ds []time.Duration) string {
		if len(ds) == 0 {
			return "-"
		}
		f := func(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }
		return fmt.Sprintf("%s/%s/%s/%s (n=%d)", f(percentile(ds, .5)), f(percentile(ds, .9)), f(percentile(ds, .99)), f(percentile(ds, 1)), len(ds))
	}
	fmt.Printf("\nLeader election, %d candidates per group; timings leaseDuration/renewDeadline/retryPeriod\n", benchCandidates)
	fmt.Printf("%-10s %-10s %6s | %-36s | %-36s | %-40s | %5s | %9s | %6s | %7s\n", "impl", "timings", "groups",
		"released->new s p50/p90/p99/max", "crashed->new s p50/p90/p99/max", "lease req/group/min", "lost", "heap MiB", "CPU %", "apisrv%")
	for _, r := range results {
		verbs := make([]string, 0, len(r.requests))
		total := 0.0
		for v, n := range r.requests {
			if n >= 0.05 {
				verbs = append(verbs, fmt.Sprintf("%s %.1f", v, n))
			}
			total += n
		}
		sort.Strings(verbs)
		fmt.Printf("%-10s %-10s %6s | %-36s | %-36s | %-40s | %5d | %9.1f | %6.1f | %7.1f\n", r.name, r.timings, r.groups, lat(r.released), lat(r.crashed),
			fmt.Sprintf("%.1f: %s", total, strings.Join(verbs, ", ")), r.lost, r.heapMiB, r.cpuPct, r.apiserverPct)
	}
}
