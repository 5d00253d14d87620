package faults

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/election-manager/election-manager/internal/testutil"
)

// The managers and electors: each slot runs one process at a time, started,
// signalled and replaced here.

// current is the slot's process now, nil while it has none.
func (s *System) current(sl *slot) *proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sl.cur
}

func (s *System) setCurrent(sl *slot, p *proc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl.cur = p
}

// slot is one manager or elector position: a process at a time, restarted with a
// new identity, behind one fault proxy for its whole life.
type slot struct {
	kind       string // "manager" or "elector"
	index, gen int
	proxy      *testutil.FaultProxy
	kubeconfig string
	metrics    int   // the manager's metrics port
	cur        *proc // under System.mu: current, setCurrent
}

// proc is one process the suite started.
type proc struct {
	id       string
	cmd      *exec.Cmd
	log      string
	done     chan struct{}
	signaled bool      // the suite stopped it on purpose
	diedAt   time.Time // when the suite saw it gone
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (s *System) newSlot(kind string, i int) (*slot, error) {
	sl := &slot{kind: kind, index: i}
	u, err := url.Parse(s.cp.Config.Host)
	if err != nil {
		return nil, err
	}
	if sl.proxy, err = testutil.StartFaultProxy(u.Host); err != nil {
		return nil, err
	}
	cfg, err := clientcmd.LoadFromFile(s.cp.Kubeconfig)
	if err != nil {
		return nil, err
	}
	for _, c := range cfg.Clusters {
		c.Server = "https://" + sl.proxy.Addr()
		c.TLSServerName = u.Hostname()
	}
	sl.kubeconfig = filepath.Join(s.dir, fmt.Sprintf("%s-%d.kubeconfig", kind, i))
	if err := clientcmd.WriteToFile(*cfg, sl.kubeconfig); err != nil {
		return nil, err
	}
	if kind == "manager" {
		sl.metrics, err = freePort()
	}
	return sl, err
}

// startSlot starts the slot's next process, with a new identity. A control plane
// that is down delays it (a manager cannot start without the API server).
func (s *System) startSlot(ctx context.Context, sl *slot) error {
	if err := s.cp.Ready(ctx, 2*time.Minute); err != nil {
		return fmt.Errorf("the API server is not ready to start %s %d: %w", sl.kind, sl.index, err)
	}
	sl.gen++
	id := fmt.Sprintf("%c%d-%d", sl.kind[0], sl.index, sl.gen)
	var bin string
	var args []string
	switch sl.kind {
	case "manager":
		bin = s.bins.Manager
		args = []string{"--kubeconfig", sl.kubeconfig, "--id", id, "--zap-time-encoding=rfc3339nano",
			fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", sl.metrics), "--metrics-secure=false",
			"--health-probe-bind-address=0", "--pods-source", "--namespaces", namespace,
			"--lock-namespace", namespace, "--lock-name", lockName,
			"--lock-lease-duration", lockTimings.LeaseDuration.String(), "--lock-renew-deadline", lockTimings.RenewDeadline.String(),
			"--lock-retry-period", lockTimings.RetryPeriod.String()}
	default:
		bin = s.bins.Elector
		args = []string{"--kubeconfig", sl.kubeconfig, "--id", id, "--namespace", namespace, "--zap-time-encoding=rfc3339nano",
			"--group", "ext", "--", s.bins.Child, "-log", s.children.Log, "-watch", s.children.Sock}
	}
	p, err := s.startProc(id, bin, args)
	if err != nil {
		return err
	}
	s.setCurrent(sl, p)
	ready := `"msg":"Starting manager"`
	if sl.kind == "elector" {
		ready = `"msg":"Joining the election"`
	}
	return wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		b, _ := os.ReadFile(p.log)
		if p.exited() {
			return false, fmt.Errorf("%s exited on start-up:\n%s", id, tail(b, 2000))
		}
		return strings.Contains(string(b), ready), nil
	})
}

func (s *System) startProc(id, bin string, args []string) (*proc, error) {
	p := &proc{id: id, log: filepath.Join(s.dir, id+".log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	// Its own process group, and dead with the suite if the suite dies.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		_ = f.Close()
		return nil, err
	}
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	go func() {
		_ = p.cmd.Wait()
		_ = f.Close()
		s.mu.Lock()
		p.diedAt = time.Now()
		if !p.signaled {
			s.problems = append(s.problems, Violation{Check: "process", At: p.diedAt, Detail: fmt.Sprintf("%s exited by itself: %v", p.id, p.cmd.ProcessState)})
		}
		s.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// kill SIGKILLs the slot's process and waits until it is gone.
func (s *System) kill(sl *slot) error {
	p := s.current(sl)
	s.mu.Lock()
	p.signaled = true
	s.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	if err := p.cmd.Process.Kill(); err != nil {
		return err
	}
	<-p.done
	s.setCurrent(sl, nil)
	return nil
}

// terminate SIGTERMs the slot's process and waits for it to exit, SIGKILLing it
// after a minute.
func (s *System) terminate(sl *slot) error {
	p := s.current(sl)
	s.mu.Lock()
	p.signaled = true
	s.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.done:
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			s.problem("process", fmt.Sprintf("%s exited with %d after SIGTERM", p.id, code))
		}
	case <-time.After(time.Minute):
		s.problem("process", fmt.Sprintf("%s still ran a minute after SIGTERM", p.id))
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	s.setCurrent(sl, nil)
	return nil
}

func (s *System) problem(check, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.problems = append(s.problems, Violation{Check: check, At: time.Now(), Detail: detail})
}

// freeze SIGSTOPs the slot's process; thaw SIGCONTs it and records the freeze.
func (s *System) freeze(sl *slot) (time.Time, error) {
	at := time.Now()
	return at, s.current(sl).cmd.Process.Signal(syscall.SIGSTOP)
}

func (s *System) thaw(sl *slot, from time.Time) error {
	p := s.current(sl)
	err := p.cmd.Process.Signal(syscall.SIGCONT)
	s.mu.Lock()
	s.freezes = append(s.freezes, Freeze{Party: p.id, From: from, To: time.Now()})
	s.mu.Unlock()
	return err
}
