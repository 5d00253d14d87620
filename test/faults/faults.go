package faults

import (
	"context"
	"fmt"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/election-manager/election-manager/internal/controller"
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
		if p := s.current(sl); p != nil && !p.exited() && !s.held(sl.resource()) {
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
		if _, id := s.writer(ctx); id != "" {
			leaders[id] = true
		}
		for _, spec := range groupSpecs {
			leaders[s.holderOf(ctx, spec.name)] = true
		}
		var leading []*slot
		for _, sl := range free {
			if p := s.current(sl); p != nil && leaders[p.id] {
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
