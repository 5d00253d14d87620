package faults

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/cmd/manager/app"
	"github.com/election-manager/election-manager/internal/testutil"
)

// The system under test: three managers and three electors, each talking to the
// API server through a fault proxy of its own; Manager groups at short timings and
// one at the defaults, a Pods group over three pods, an External group the electors
// contest.
const (
	namespace = "faults"
	lockName  = "election-manager"
	// Pods whose readiness the suite sets, as a kubelet would.
	podCount = 3
)

// lockTimings are the managers' own lock's: the status writer changes within them.
var lockTimings = Timings{4 * time.Second, 2 * time.Second, 500 * time.Millisecond}

var (
	fast    = Timings{4 * time.Second, 2 * time.Second, 500 * time.Millisecond}
	mid     = Timings{6 * time.Second, 3 * time.Second, time.Second}
	shorter = Timings{3 * time.Second, 2 * time.Second, 500 * time.Millisecond}
	longer  = Timings{10 * time.Second, 5 * time.Second, 2 * time.Second}
	slow    = Timings{15 * time.Second, 10 * time.Second, 2 * time.Second} // the defaults
)

// groupSpecs are the groups under test; "mid" is the one whose timings change.
var groupSpecs = []struct {
	name    string
	source  Source
	timings Timings
}{
	{"fast-a", Manager, fast},
	{"fast-b", Manager, fast},
	{"mid", Manager, mid},
	{"slow", Manager, slow},
	{"web", Pods, fast},
	{"ext", External, mid},
}

// Binaries are the programs under test.
type Binaries struct{ Manager, Elector, Child string }

// BuildBinaries builds the manager, the elector and the elector's test child into dir.
func BuildBinaries(dir string) (Binaries, error) {
	var b Binaries
	var err error
	if b.Manager, err = testutil.BuildBinary(dir, "cmd/manager"); err != nil {
		return b, err
	}
	if b.Elector, err = testutil.BuildBinary(dir, "cmd/elector"); err != nil {
		return b, err
	}
	b.Child, err = testutil.BuildBinary(dir, "test/e2e/testdata/elector-child")
	return b, err
}

// System is the running system and what the suite records of it.
type System struct {
	logf func(format string, args ...any)
	cp   *testutil.ControlPlane
	cs   kubernetes.Interface
	k8s  client.WithWatch
	bins Binaries
	dir  string
	// offset converts the children's CLOCK_MONOTONIC to wall-clock time.
	offset int64

	managers, electors []*slot

	mu       sync.Mutex
	groups   map[string]*Group
	procs    []*proc
	freezes  []Freeze
	faults   []Fault
	problems []Violation
	watch    *watches
	children *testutil.Children
	claimed  map[string]bool
	ready    map[string]bool // pods the suite set Ready
	baseline leakBaseline
	// stopping is when Stop began: the end of the run.
	stopping time.Time
	// intruders counts the foreign holders hijack made up.
	intruders int
}

// Start starts the control plane and the whole system, and waits until every group
// has a leader.
func Start(ctx context.Context, dir string, bins Binaries, logf func(string, ...any)) (*System, error) {
	s := &System{logf: logf, bins: bins, dir: dir, groups: map[string]*Group{}, claimed: map[string]bool{}, ready: map[string]bool{}}
	var err error
	if s.cp, err = testutil.StartControlPlane(); err != nil {
		return nil, err
	}
	if s.cs, err = kubernetes.NewForConfig(s.cp.Config); err != nil {
		return s, err
	}
	scheme, err := app.NewScheme()
	if err != nil {
		return s, err
	}
	if s.k8s, err = client.NewWithWatch(s.cp.Config, client.Options{Scheme: scheme}); err != nil {
		return s, err
	}
	if _, err := s.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		return s, err
	}
	if s.children, err = newChildren(dir); err != nil {
		return s, err
	}
	s.offset = time.Now().UnixNano() - testutil.MonoNow()
	for _, spec := range groupSpecs {
		g := &Group{Name: spec.name, Lease: namespace + "/" + spec.name, Source: spec.source, Timings: []Timings{spec.timings}}
		s.groups[spec.name] = g
		if err := s.createGroup(ctx, spec.name, spec.source, spec.timings); err != nil {
			return s, err
		}
	}
	for i := range podCount {
		if err := s.createPod(ctx, fmt.Sprintf("web-%d", i)); err != nil {
			return s, err
		}
	}
	if s.watch, err = startWatches(ctx, s); err != nil {
		return s, err
	}
	for i := range 3 {
		m, err := s.newSlot("manager", i)
		if err != nil {
			return s, err
		}
		s.managers = append(s.managers, m)
		e, err := s.newSlot("elector", i)
		if err != nil {
			return s, err
		}
		s.electors = append(s.electors, e)
	}
	for _, sl := range append(append([]*slot{}, s.managers...), s.electors...) {
		if err := s.startSlot(ctx, sl); err != nil {
			return s, err
		}
	}
	if err := s.Settle(ctx, 2*time.Minute); err != nil {
		return s, fmt.Errorf("the system never settled: %w", err)
	}
	return s, nil
}

func (s *System) createGroup(ctx context.Context, name string, source Source, t Timings) error {
	g := &v1alpha1.LeaderGroup{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
	g.Spec.LeaseDuration = metav1.Duration{Duration: t.LeaseDuration}
	g.Spec.RenewDeadline = metav1.Duration{Duration: t.RenewDeadline}
	g.Spec.RetryPeriod = metav1.Duration{Duration: t.RetryPeriod}
	g.Spec.HistoryLimit = 100
	g.Spec.Candidates.Source = v1alpha1.CandidateSource(source)
	if source == Pods {
		g.Spec.Candidates.PodSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}
	}
	return s.k8s.Create(ctx, g)
}

func (s *System) createPod(ctx context.Context, name string) error {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:1"}}},
	}
	if _, err := s.cs.CoreV1().Pods(namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		return err
	}
	return s.setReady(ctx, name, true)
}

// setReady sets a pod's Ready condition through the status subresource, as a
// kubelet would, retrying through control-plane faults.
func (s *System) setReady(ctx context.Context, name string, ready bool) error {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	err := s.retry(ctx, func(ctx context.Context) error {
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			p, err := s.cs.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			p.Status.Phase = corev1.PodRunning
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status, LastTransitionTime: metav1.Now()}}
			_, err = s.cs.CoreV1().Pods(namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
			return err
		})
	})
	if err == nil {
		s.mu.Lock()
		s.ready[name] = ready
		s.mu.Unlock()
	}
	return err
}

// retry runs op, each try given 5s, until it succeeds or a minute passed: the API
// server may be down for a control-plane fault.
func (s *System) retry(ctx context.Context, op func(context.Context) error) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		octx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		last = op(octx)
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("%w (last: %v)", err, last)
	}
	return nil
}

// editGroup applies edit to the group's spec, retrying conflicts and outages.
func (s *System) editGroup(ctx context.Context, name string, edit func(*v1alpha1.LeaderGroup)) error {
	return s.retry(ctx, func(ctx context.Context) error {
		g := &v1alpha1.LeaderGroup{}
		if err := s.k8s.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, g); err != nil {
			return err
		}
		edit(g)
		return s.k8s.Update(ctx, g)
	})
}

// Settle waits until every group has a leader: a live party holds its Lease within
// its duration, or for the Pods group a pod carries the label.
func (s *System) Settle(ctx context.Context, timeout time.Duration) error {
	var missing []string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		missing = missing[:0]
		live := s.liveIDs()
		for _, spec := range groupSpecs {
			if spec.source == Pods {
				if len(s.watch.labelled(spec.name)) != 1 {
					missing = append(missing, spec.name)
				}
				continue
			}
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			l, err := s.cs.CoordinationV1().Leases(namespace).Get(lctx, spec.name, metav1.GetOptions{})
			cancel()
			if err != nil || !live[ptr.Deref(l.Spec.HolderIdentity, "")] || l.Spec.RenewTime == nil ||
				time.Since(l.Spec.RenewTime.Time) > time.Duration(ptr.Deref(l.Spec.LeaseDurationSeconds, 0))*time.Second {
				missing = append(missing, spec.name)
			}
		}
		return len(missing) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("no leader in %v after %s", missing, timeout)
	}
	return nil
}

// liveIDs are the identities of the processes running now.
func (s *System) liveIDs() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]bool{}
	for _, p := range s.procs {
		if !p.exited() {
			out[p.id] = true
		}
	}
	return out
}

// writer is the manager slot whose process holds the manager lock, and that
// process's identity; nil if none does.
func (s *System) writer(ctx context.Context) (*slot, string) {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	l, err := s.cs.CoordinationV1().Leases(namespace).Get(lctx, lockName, metav1.GetOptions{})
	if err != nil {
		return nil, ""
	}
	for _, m := range s.managers {
		if p := s.current(m); p != nil && p.id == ptr.Deref(l.Spec.HolderIdentity, "") {
			return m, p.id
		}
	}
	return nil, ""
}

// holderOf is the holder of a group's Lease now, "" if none or unknown.
func (s *System) holderOf(ctx context.Context, group string) string {
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	l, err := s.cs.CoordinationV1().Leases(namespace).Get(lctx, group, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return ptr.Deref(l.Spec.HolderIdentity, "")
}

// Stop stops every process (SIGTERM, so that each logs the end of its terms), then
// the control plane.
func (s *System) Stop() {
	s.mu.Lock()
	if s.stopping.IsZero() {
		s.stopping = time.Now()
	}
	s.mu.Unlock()
	for _, sl := range append(append([]*slot{}, s.managers...), s.electors...) {
		if s.current(sl) != nil && !s.current(sl).exited() {
			_ = s.terminate(sl)
		}
	}
	s.mu.Lock()
	procs := append([]*proc(nil), s.procs...)
	s.mu.Unlock()
	for _, p := range procs {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	for _, sl := range append(append([]*slot{}, s.managers...), s.electors...) {
		sl.proxy.Close()
	}
	if s.watch != nil {
		s.watch.stop()
	}
	if s.children != nil {
		s.children.Close()
	}
	if s.cp != nil {
		_ = s.cp.Stop()
	}
}

// Records gathers what every party recorded, once the processes are stopped.
func (s *System) Records(slack time.Duration) Records {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := Records{End: s.stopping, Slack: slack, Freezes: s.freezes, Faults: s.faults, Problems: append([]Violation(nil), s.problems...)}
	leases := map[string]string{}
	for _, spec := range groupSpecs {
		g := *s.groups[spec.name]
		g.Recovery = recoveryBound(g)
		r.Groups = append(r.Groups, g)
		leases[g.Lease] = g.Name
	}
	for _, p := range s.procs {
		b, err := os.ReadFile(p.log)
		if err != nil {
			r.Problems = append(r.Problems, Violation{Check: "records", At: r.End, Detail: err.Error()})
			continue
		}
		r.Intervals = append(r.Intervals, ParseIntervals(p.id, b, leases, p.diedAt)...)
		for _, line := range FindPanics(b) {
			r.Problems = append(r.Problems, Violation{Check: "panic", At: p.diedAt, Detail: p.id + ": " + line})
		}
	}
	r.Runs = childRuns(s.children, s.offset)
	r.Leases, r.Statuses, r.Labels = s.watch.records()
	return r
}

// recordFault adds a fault to the records.
func (s *System) recordFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

// addTimings records that a group now runs with t too.
func (s *System) addTimings(group string, t Timings) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[group]
	for _, have := range g.Timings {
		if have == t {
			return
		}
	}
	g.Timings = append(g.Timings, t)
}

// recoveryBound is how long a group may go without a leader after the faults end:
// a leaseDuration for the record to expire, then a renewDeadline and two retry
// periods for a candidate (woken by its informer, backed off at most a retry
// period) to acquire; for a Pods group the status writer changes first, within the
// manager lock's own bound, and so may it for an External group, whose electors
// wait for the status writer to let a deleted Lease go.
func recoveryBound(g Group) time.Duration {
	var d time.Duration
	for _, t := range g.Timings {
		d = max(d, t.LeaseDuration+t.RenewDeadline+2*t.RetryPeriod)
	}
	if g.Source == Pods || g.Source == External {
		d += lockTimings.LeaseDuration + lockTimings.RenewDeadline + 2*lockTimings.RetryPeriod
	}
	return d
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
