package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/testutil"
)

// Test timings, as the issue fixes them: leaseDuration 6s, renewDeadline 3s, retryPeriod 1s.
const (
	leaseDuration = 6 * time.Second
	renewDeadline = 3 * time.Second
	retryPeriod   = time.Second
)

// cluster is one test's share of the control plane: its own namespace and its own
// manager lock, so that managers of other tests are not candidates here.
type cluster struct {
	t         *testing.T
	namespace string
	lockName  string
	managers  []*manager
	// electing: a manager was seen holding a group, so its log must show it.
	electing bool
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-"}}
	ns, err := clientset.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, namespace: ns.Name, lockName: "lock-" + ns.Name}
	t.Cleanup(func() { c.checkNoOverlap() })
	return c
}

// manager is a manager process under test.
type manager struct {
	*testutil.Process
	id    string
	proxy *testutil.FaultProxy // nil: talks to the API server directly
	// killedAt ends its open leading intervals when it was SIGKILLed.
	killedAt time.Time
}

// startManager runs a manager with the test timings for its own lock, serving the
// cluster's namespace (and extra flags).
func (c *cluster) startManager(id string, viaProxy bool, extra ...string) *manager {
	c.t.Helper()
	m := &manager{id: id}
	kubeconfig := cp.Kubeconfig
	if viaProxy {
		kubeconfig, m.proxy = proxiedKubeconfig(c.t)
	}
	m.Process = testutil.StartProcess(c.t, id, managerBin, c.managerArgs(kubeconfig, id, extra...)...)
	c.managers = append(c.managers, m)
	m.WaitForOutput(c.t, `"msg":"Starting manager"`, 30*time.Second)
	return m
}

// managerArgs are the flags of a manager with the test timings for its own lock,
// serving the cluster's namespace (and extra flags).
func (c *cluster) managerArgs(kubeconfig, id string, extra ...string) []string {
	return append([]string{"--kubeconfig", kubeconfig, "--id", id,
		"--metrics-bind-address=0", "--health-probe-bind-address=0", "--zap-time-encoding=rfc3339nano",
		"--namespaces", c.namespace, "--lock-namespace", c.namespace, "--lock-name", c.lockName,
		"--lock-lease-duration", leaseDuration.String(), "--lock-renew-deadline", renewDeadline.String(),
		"--lock-retry-period", retryPeriod.String(),
	}, extra...)
}

// kill SIGKILLs the manager and remembers when.
func (m *manager) kill(t *testing.T) {
	t.Helper()
	m.killedAt = time.Now()
	if err := m.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	m.Wait(t, 10*time.Second)
}

// terminate SIGTERMs the manager and expects a clean exit.
func (m *manager) terminate(t *testing.T) {
	t.Helper()
	if err := m.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := m.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("%s exited with %d after SIGTERM", m.id, code)
	}
}

// proxiedKubeconfig writes the admin kubeconfig with its server behind a new FaultProxy.
func proxiedKubeconfig(t *testing.T) (string, *testutil.FaultProxy) {
	t.Helper()
	u, err := url.Parse(cp.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := testutil.StartFaultProxy(u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	cfg, err := clientcmd.LoadFromFile(cp.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, cluster := range cfg.Clusters {
		cluster.Server = "https://" + proxy.Addr()
		cluster.TLSServerName = u.Hostname()
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path, proxy
}

// interval is a time a manager's elector said it led a Lease.
type interval struct {
	id, lease  string
	epoch      int32
	start, end time.Time // end is zero while it leads
}

// intervals reads the manager's leading intervals from its log.
func (m *manager) intervals(t *testing.T) []interval {
	t.Helper()
	var out []interval
	open := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(m.Output()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			TS    string `json:"ts"`
			Msg   string `json:"msg"`
			Lease string `json:"lease"`
			Epoch int32  `json:"epoch"`
		}
		if !strings.Contains(sc.Text(), `"msg":"Leading"`) && !strings.Contains(sc.Text(), `"msg":"Stopped leading"`) {
			continue
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil || line.Lease == "" {
			t.Fatalf("%s: cannot read a leadership change from %s (%v)", m.id, sc.Text(), err)
		}
		ts, err := time.Parse(time.RFC3339Nano, line.TS)
		if err != nil {
			t.Fatalf("%s: bad timestamp in %s", m.id, sc.Text())
		}
		if line.Msg == "Leading" {
			open[line.Lease] = len(out)
			out = append(out, interval{id: m.id, lease: line.Lease, epoch: line.Epoch, start: ts})
		} else if i, ok := open[line.Lease]; ok {
			out[i].end = ts
			delete(open, line.Lease)
		}
	}
	for _, i := range open {
		out[i].end = m.killedAt // zero while it still runs: it leads now
	}
	return out
}

// checkNoOverlap is the safety checker: leading intervals of different managers on
// one Lease never overlap.
func (c *cluster) checkNoOverlap() {
	t := c.t
	var all []interval
	for _, m := range c.managers {
		all = append(all, m.intervals(t)...)
	}
	now := time.Now()
	for i, a := range all {
		for _, b := range all[i+1:] {
			if a.lease != b.lease || a.id == b.id {
				continue
			}
			aEnd, bEnd := orNow(a.end, now), orNow(b.end, now)
			if a.start.Before(bEnd) && b.start.Before(aEnd) {
				t.Errorf("SAFETY: %s (epoch %d, %s–%s) and %s (epoch %d, %s–%s) both led %s",
					a.id, a.epoch, a.start.Format(time.StampMicro), aEnd.Format(time.StampMicro),
					b.id, b.epoch, b.start.Format(time.StampMicro), bEnd.Format(time.StampMicro), a.lease)
			}
		}
	}
	if c.electing && len(all) == 0 {
		t.Errorf("safety checker: no leading interval in any manager's log: the checker cannot see leadership")
	}
	t.Logf("safety checker: %d leading intervals, no overlap", len(all))
}

func orNow(t, now time.Time) time.Time {
	if t.IsZero() {
		return now
	}
	return t
}

// group creates a LeaderGroup with the test timings.
func (c *cluster) group(name string, edit ...func(*v1alpha1.LeaderGroup)) *v1alpha1.LeaderGroup {
	c.t.Helper()
	g := &v1alpha1.LeaderGroup{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.namespace}}
	g.Spec.LeaseDuration = metav1.Duration{Duration: leaseDuration}
	g.Spec.RenewDeadline = metav1.Duration{Duration: renewDeadline}
	g.Spec.RetryPeriod = metav1.Duration{Duration: retryPeriod}
	for _, e := range edit {
		e(g)
	}
	if err := k8s.Create(context.Background(), g); err != nil {
		c.t.Fatal(err)
	}
	return g
}

// waitFor polls the group until cond holds and returns it then.
func (c *cluster) waitFor(name string, timeout time.Duration, what string, cond func(*v1alpha1.LeaderGroup) bool) *v1alpha1.LeaderGroup {
	c.t.Helper()
	g := &v1alpha1.LeaderGroup{}
	key := types.NamespacedName{Namespace: c.namespace, Name: name}
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, timeout, true,
		func(ctx context.Context) (bool, error) {
			if err := k8s.Get(ctx, key, g); err != nil {
				return false, client.IgnoreNotFound(err)
			}
			return cond(g), nil
		})
	if err != nil {
		c.t.Fatalf("group %s: %s did not happen within %s; status: %s", name, what, timeout, statusString(g))
	}
	for _, m := range c.managers {
		c.electing = c.electing || g.Status.Holder == m.id
	}
	return g
}

func statusString(g *v1alpha1.LeaderGroup) string {
	b, _ := json.Marshal(g.Status)
	return string(b)
}

func heldBy(id string) func(*v1alpha1.LeaderGroup) bool {
	return func(g *v1alpha1.LeaderGroup) bool { return g.Status.Holder == id }
}

func heldByAnyoneBut(id string) func(*v1alpha1.LeaderGroup) bool {
	return func(g *v1alpha1.LeaderGroup) bool { return g.Status.Holder != "" && g.Status.Holder != id }
}

func describeHistory(g *v1alpha1.LeaderGroup) string {
	var parts []string
	for _, e := range g.Status.History {
		parts = append(parts, fmt.Sprintf("%s/%d %s→%s", e.Holder, e.Transition, e.StartReason, e.EndReason))
	}
	return strings.Join(parts, ", ")
}

func getLease(t *testing.T, key types.NamespacedName) *coordinationv1.Lease {
	t.Helper()
	l, err := clientset.CoordinationV1().Leases(key.Namespace).Get(context.Background(), key.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// waitForLeaseHolder polls the Lease itself (the truth) until holder holds it.
func waitForLeaseHolder(t *testing.T, key types.NamespacedName, holder string, timeout time.Duration) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, timeout, true,
		func(ctx context.Context) (bool, error) {
			l, err := clientset.CoordinationV1().Leases(key.Namespace).Get(ctx, key.Name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			last = ptr.Deref(l.Spec.HolderIdentity, "")
			return last == holder, nil
		})
	if err != nil {
		t.Fatalf("Lease %s: not held by %s within %s (holder %q)", key, holder, timeout, last)
	}
}

// heldWithFollower is the client-go example's starting point: holder (started first,
// through a fault proxy when viaProxy) holds group "payments", and manager-b has joined
// as a follower, listed among the candidates. It returns the holder.
func (c *cluster) heldWithFollower(viaProxy bool) *manager {
	c.t.Helper()
	a := c.startManager("manager-a", viaProxy)
	c.group("payments")
	c.waitFor("payments", 10*time.Second, "held by manager-a", heldBy("manager-a"))
	c.startManager("manager-b", false)
	c.waitFor("payments", 2*leaseDuration, "both candidates listed", hasCandidates("manager-a", "manager-b"))
	return a
}

// renewals records, from a watch on one Lease, the renewTime each holder last
// wrote: the send time of its last successful renewal (holders write their own clock,
// the same machine's here).
type renewals struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func watchRenewals(t *testing.T, key types.NamespacedName) *renewals {
	t.Helper()
	w := &renewals{last: map[string]time.Time{}}
	watchVersions(t, key, w.see)
	return w
}

// watchVersions hands see the Lease's current version, then every later one, from
// a watch, until the test ends.
func watchVersions(t *testing.T, key types.NamespacedName, see func(*coordinationv1.Lease)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	l := getLease(t, key)
	see(l)
	events, err := clientset.CoordinationV1().Leases(key.Namespace).Watch(ctx, metav1.ListOptions{
		FieldSelector: "metadata.name=" + key.Name, ResourceVersion: l.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for e := range events.ResultChan() {
			if l, ok := e.Object.(*coordinationv1.Lease); ok {
				see(l)
			}
		}
	}()
}

func (w *renewals) see(l *coordinationv1.Lease) {
	holder := ptr.Deref(l.Spec.HolderIdentity, "")
	if holder == "" || l.Spec.RenewTime == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if l.Spec.RenewTime.After(w.last[holder]) {
		w.last[holder] = l.Spec.RenewTime.Time
	}
}

func (w *renewals) lastOf(id string) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last[id]
}
