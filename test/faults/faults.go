package faults

import (
	"context"
	"fmt"
	"syscall"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/controller"
	"github.com/election-manager/election-manager/internal/leaserecord"
	"github.com/election-manager/election-manager/internal/testutil"
)

// fault is one kind of fault. claim picks its target among those no other fault
// holds now and reserves it (false: none free); inject starts the fault, heal ends
// it, the planned duration apart.
type fault interface {
	claim(ctx context.Context, s *System) (target string, ok bool)
	inject(ctx context.Context, s *System) error
	heal(ctx context.Context, s *System) error
}

// newFault makes the fault a step plans.
func newFault(st Step) fault {
	switch st.Kind {
	case "cut-refuse":
		return &cut{mode: testutil.Refuse, pick: st.Pick}
	case "cut-blackhole":
		return &cut{mode: testutil.Blackhole, pick: st.Pick}
	case "cut-response-lost":
		return &cut{mode: testutil.ResponseLost, pick: st.Pick}
	case "apiserver-kill":
		return &controlPlane{comp: testutil.APIServer, kill: true}
	case "apiserver-stop":
		return &controlPlane{comp: testutil.APIServer}
	case "etcd-kill":
		return &controlPlane{comp: testutil.Etcd, kill: true}
	case "etcd-stop":
		return &controlPlane{comp: testutil.Etcd}
	case "manager-kill":
		return &signal{kind: "manager", sig: syscall.SIGKILL, pick: st.Pick}
	case "manager-term":
		return &signal{kind: "manager", sig: syscall.SIGTERM, pick: st.Pick}
	case "manager-stop":
		return &signal{kind: "manager", sig: syscall.SIGSTOP, pick: st.Pick}
	case "elector-kill":
		return &signal{kind: "elector", sig: syscall.SIGKILL, pick: st.Pick}
	case "elector-term":
		return &signal{kind: "elector", sig: syscall.SIGTERM, pick: st.Pick}
	case "elector-stop":
		return &signal{kind: "elector", sig: syscall.SIGSTOP, pick: st.Pick}
	case "rolling-restart":
		return &rolling{}
	case "lease-delete":
		return &leaseDelete{pick: st.Pick}
	case "lease-hijack":
		return &hijack{pick: st.Pick}
	case "timings-shorter":
		return &timings{to: shorter}
	case "timings-longer":
		return &timings{to: longer}
	case "preferred-holder":
		return &preferred{pick: st.Pick}
	case "suspend":
		return &suspend{pick: st.Pick}
	case "pod-unready":
		return &unready{pick: st.Pick}
	case "writer-kill-mid-switch":
		return &writerKill{pick: st.Pick}
	}
	panic("unknown fault kind " + st.Kind)
}

// reserve claims every resource, or none if one is held.
func (s *System) reserve(resources ...string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range resources {
		if s.claimed[r] {
			return false
		}
	}
	for _, r := range resources {
		s.claimed[r] = true
	}
	return true
}

func (s *System) release(resources ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range resources {
		delete(s.claimed, r)
	}
}

func (s *System) held(resource string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.claimed[resource]
}

func (sl *slot) resource() string { return fmt.Sprintf("%s-%d", sl.kind, sl.index) }

// freeSlots are the slots of the kind(s) whose process runs and that no fault holds.
func (s *System) freeSlots(slots []*slot) []*slot {
	var out []*slot
	for _, sl := range slots {
		if s.current(sl) != nil && !s.current(sl).exited() && !s.held(sl.resource()) {
			out = append(out, sl)
		}
	}
	return out
}

// pickSlot picks a free slot: half the time one whose process leads a group (or
// writes status), where a fault matters most.
func (s *System) pickSlot(ctx context.Context, slots []*slot, pick int) *slot {
	free := s.freeSlots(slots)
	if len(free) == 0 {
		return nil
	}
	if pick%2 == 0 {
		leaders := map[string]bool{}
		if w := s.writer(ctx); w != nil {
			leaders[s.current(w).id] = true
		}
		for _, spec := range groupSpecs {
			leaders[s.holderOf(ctx, spec.name)] = true
		}
		var leading []*slot
		for _, sl := range free {
			if leaders[s.current(sl).id] {
				leading = append(leading, sl)
			}
		}
		if len(leading) > 0 {
			free = leading
		}
	}
	sl := free[(pick/2)%len(free)]
	if !s.reserve(sl.resource()) {
		return nil
	}
	return sl
}

// cut puts a process's fault proxy in a mode other than Pass.
type cut struct {
	mode testutil.ProxyMode
	pick int
	sl   *slot
}

func (f *cut) claim(ctx context.Context, s *System) (string, bool) {
	f.sl = s.pickSlot(ctx, append(append([]*slot{}, s.managers...), s.electors...), f.pick)
	if f.sl == nil {
		return "", false
	}
	return s.current(f.sl).id, true
}

func (f *cut) inject(context.Context, *System) error { f.sl.proxy.SetMode(f.mode); return nil }

func (f *cut) heal(_ context.Context, s *System) error {
	f.sl.proxy.SetMode(testutil.Pass)
	s.release(f.sl.resource())
	return nil
}

// controlPlane kills and restarts, or stops and continues, etcd or kube-apiserver.
type controlPlane struct {
	comp testutil.Component
	kill bool
}

func (f *controlPlane) claim(_ context.Context, s *System) (string, bool) {
	return string(f.comp), s.reserve("control-plane")
}

func (f *controlPlane) inject(_ context.Context, s *System) error {
	if f.kill {
		return s.cp.Kill(f.comp)
	}
	return s.cp.Pause(f.comp)
}

// heal ends when the API server answers again.
func (f *controlPlane) heal(ctx context.Context, s *System) error {
	defer s.release("control-plane")
	var err error
	if f.kill {
		err = s.cp.Restart(f.comp)
	} else {
		err = s.cp.Resume(f.comp)
	}
	if err != nil {
		return err
	}
	return s.cp.Ready(ctx, 2*time.Minute)
}

// signal SIGKILLs, SIGTERMs or SIGSTOPs a manager or an elector. A killed or
// terminated one is replaced by a new process (a new identity) at heal; a stopped
// one is continued.
type signal struct {
	kind string
	sig  syscall.Signal
	pick int
	sl   *slot
	at   time.Time
}

func (f *signal) claim(ctx context.Context, s *System) (string, bool) {
	slots := s.managers
	if f.kind == "elector" {
		slots = s.electors
	}
	f.sl = s.pickSlot(ctx, slots, f.pick)
	if f.sl == nil {
		return "", false
	}
	return s.current(f.sl).id, true
}

func (f *signal) inject(_ context.Context, s *System) error {
	switch f.sig {
	case syscall.SIGKILL:
		return s.kill(f.sl)
	case syscall.SIGTERM:
		return s.terminate(f.sl)
	}
	var err error
	f.at, err = s.freeze(f.sl)
	return err
}

func (f *signal) heal(ctx context.Context, s *System) error {
	defer s.release(f.sl.resource())
	if f.sig == syscall.SIGSTOP {
		return s.thaw(f.sl, f.at)
	}
	return s.startSlot(ctx, f.sl)
}

// rolling restarts every manager in turn, as a Deployment's rolling update does:
// SIGTERM, a new process, and the next once the new one has announced itself.
type rolling struct{}

func (f *rolling) claim(_ context.Context, s *System) (string, bool) {
	var all []string
	for _, m := range s.managers {
		all = append(all, m.resource())
	}
	return "all managers", len(s.freeSlots(s.managers)) == len(s.managers) && s.reserve(all...)
}

func (f *rolling) inject(ctx context.Context, s *System) error {
	for _, m := range s.managers {
		if err := s.terminate(m); err != nil {
			return err
		}
		if err := s.startSlot(ctx, m); err != nil {
			return err
		}
		presence := controller.PresenceLeaseName(lockName, s.current(m).id)
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, err := s.cs.CoordinationV1().Leases(namespace).Get(lctx, presence, metav1.GetOptions{})
			return err == nil, nil
		})
		if err != nil {
			return fmt.Errorf("%s never announced itself: %w", s.current(m).id, err)
		}
	}
	return nil
}

func (f *rolling) heal(_ context.Context, s *System) error {
	for _, m := range s.managers {
		s.release(m.resource())
	}
	return nil
}

// groupFault reserves one group among names.
func (s *System) pickGroup(names []string, pick int) string {
	for i := range names {
		g := names[(pick+i)%len(names)]
		if s.reserve("group-" + g) {
			return g
		}
	}
	return ""
}

var electedGroups = []string{"fast-a", "fast-b", "mid", "slow", "web", "ext"}

// leaseDelete deletes a group's Lease under its leader.
type leaseDelete struct {
	pick  int
	group string
}

func (f *leaseDelete) claim(_ context.Context, s *System) (string, bool) {
	f.group = s.pickGroup(electedGroups, f.pick)
	return f.group, f.group != ""
}

func (f *leaseDelete) inject(ctx context.Context, s *System) error {
	return s.retry(ctx, func(ctx context.Context) error {
		err := s.cs.CoordinationV1().Leases(namespace).Delete(ctx, f.group, metav1.DeleteOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
}

func (f *leaseDelete) heal(_ context.Context, s *System) error {
	s.release("group-" + f.group)
	return nil
}

// hijack writes a group's Lease as a foreign writer that ignores the rules would:
// another holder, the next epoch, acquired now, without the project's annotations.
type hijack struct {
	pick  int
	group string
}

func (f *hijack) claim(_ context.Context, s *System) (string, bool) {
	f.group = s.pickGroup(electedGroups, f.pick)
	return f.group, f.group != ""
}

func (f *hijack) inject(ctx context.Context, s *System) error {
	s.mu.Lock()
	s.intruders++
	id := fmt.Sprintf("intruder-%d", s.intruders)
	s.mu.Unlock()
	return s.retry(ctx, func(ctx context.Context) error {
		l, err := s.cs.CoordinationV1().Leases(namespace).Get(ctx, f.group, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil // deleted: nothing to hijack
		}
		if err != nil {
			return err
		}
		now := metav1.NewMicroTime(time.Now())
		epoch := leaserecord.Epoch(l) + 1
		l.Spec.HolderIdentity, l.Spec.LeaseTransitions = &id, &epoch
		l.Spec.AcquireTime, l.Spec.RenewTime = &now, &now
		for _, a := range leaserecord.Reserved {
			delete(l.Annotations, a)
		}
		_, err = s.cs.CoordinationV1().Leases(namespace).Update(ctx, l, metav1.UpdateOptions{})
		return err
	})
}

func (f *hijack) heal(_ context.Context, s *System) error {
	s.release("group-" + f.group)
	return nil
}

// timings makes group mid's timings shorter or longer while it runs, and back.
type timings struct{ to Timings }

func (f *timings) claim(_ context.Context, s *System) (string, bool) {
	return "mid", s.reserve("group-mid")
}

func setTimings(g *v1alpha1.LeaderGroup, t Timings) {
	g.Spec.LeaseDuration = metav1.Duration{Duration: t.LeaseDuration}
	g.Spec.RenewDeadline = metav1.Duration{Duration: t.RenewDeadline}
	g.Spec.RetryPeriod = metav1.Duration{Duration: t.RetryPeriod}
}

func (f *timings) inject(ctx context.Context, s *System) error {
	s.addTimings("mid", f.to)
	return s.editGroup(ctx, "mid", func(g *v1alpha1.LeaderGroup) { setTimings(g, f.to) })
}

func (f *timings) heal(ctx context.Context, s *System) error {
	defer s.release("group-mid")
	return s.editGroup(ctx, "mid", func(g *v1alpha1.LeaderGroup) { setTimings(g, mid) })
}

// preferred sets preferredHolder — a running manager for fast-a, a pod for web —
// and clears it.
type preferred struct {
	pick          int
	group, holder string
}

func (f *preferred) claim(_ context.Context, s *System) (string, bool) {
	f.group = s.pickGroup([]string{"fast-a", "web"}, f.pick)
	switch f.group {
	case "":
		return "", false
	case "web":
		f.holder = fmt.Sprintf("web-%d", f.pick%podCount)
	default:
		var ids []string
		for _, m := range s.managers {
			if s.current(m) != nil {
				ids = append(ids, s.current(m).id)
			}
		}
		if len(ids) == 0 {
			s.release("group-" + f.group)
			return "", false
		}
		f.holder = ids[f.pick%len(ids)]
	}
	return f.group + "→" + f.holder, true
}

func (f *preferred) inject(ctx context.Context, s *System) error {
	return s.editGroup(ctx, f.group, func(g *v1alpha1.LeaderGroup) { g.Spec.PreferredHolder = f.holder })
}

func (f *preferred) heal(ctx context.Context, s *System) error {
	defer s.release("group-" + f.group)
	return s.editGroup(ctx, f.group, func(g *v1alpha1.LeaderGroup) { g.Spec.PreferredHolder = "" })
}

// suspend suspends a Manager or Pods group and resumes it.
type suspend struct {
	pick  int
	group string
}

func (f *suspend) claim(_ context.Context, s *System) (string, bool) {
	f.group = s.pickGroup([]string{"fast-a", "fast-b", "mid", "slow", "web"}, f.pick)
	return f.group, f.group != ""
}

func (f *suspend) inject(ctx context.Context, s *System) error {
	return s.editGroup(ctx, f.group, func(g *v1alpha1.LeaderGroup) { g.Spec.Suspend = true })
}

func (f *suspend) heal(ctx context.Context, s *System) error {
	defer s.release("group-" + f.group)
	return s.editGroup(ctx, f.group, func(g *v1alpha1.LeaderGroup) { g.Spec.Suspend = false })
}

// pickPod reserves a Ready pod, half the time the labelled one, so long as another
// pod stays Ready.
func (s *System) pickPod(pick int) string {
	labelled := s.watch.labelled("web")
	s.mu.Lock()
	var ready []string
	for i := range podCount {
		name := fmt.Sprintf("web-%d", i)
		if s.ready[name] && !s.claimed["pod-"+name] {
			ready = append(ready, name)
		}
	}
	s.mu.Unlock()
	if len(ready) < 2 {
		return ""
	}
	pod := ready[pick%len(ready)]
	if pick%2 == 0 && len(labelled) == 1 {
		for _, r := range ready {
			if r == labelled[0] {
				pod = r
			}
		}
	}
	if !s.reserve("pod-" + pod) {
		return ""
	}
	return pod
}

// unready turns a pod unready, as a failing readiness probe would, and Ready again.
type unready struct {
	pick int
	pod  string
}

func (f *unready) claim(_ context.Context, s *System) (string, bool) {
	f.pod = s.pickPod(f.pick)
	return f.pod, f.pod != ""
}

func (f *unready) inject(ctx context.Context, s *System) error { return s.setReady(ctx, f.pod, false) }

func (f *unready) heal(ctx context.Context, s *System) error {
	defer s.release("pod-" + f.pod)
	return s.setReady(ctx, f.pod, true)
}

// writerKill turns the labelled pod unready and SIGKILLs the status writer a few
// milliseconds later, in the middle of the switch that follows.
type writerKill struct {
	pick int
	pod  string
	sl   *slot
}

func (f *writerKill) claim(ctx context.Context, s *System) (string, bool) {
	w := s.writer(ctx)
	labelled := s.watch.labelled("web")
	if w == nil || len(labelled) != 1 || !s.reserve(w.resource()) {
		return "", false
	}
	f.pod = s.pickPod(0) // the labelled pod when it can
	if f.pod == "" {
		s.release(w.resource())
		return "", false
	}
	f.sl = w
	return s.current(w).id + " switching from " + f.pod, true
}

func (f *writerKill) inject(ctx context.Context, s *System) error {
	if err := s.setReady(ctx, f.pod, false); err != nil {
		return err
	}
	time.Sleep(time.Duration(f.pick%150) * time.Millisecond) // into the switch, or not quite
	return s.kill(f.sl)
}

func (f *writerKill) heal(ctx context.Context, s *System) error {
	defer s.release(f.sl.resource(), "pod-"+f.pod)
	if err := s.setReady(ctx, f.pod, true); err != nil {
		return err
	}
	return s.startSlot(ctx, f.sl)
}
