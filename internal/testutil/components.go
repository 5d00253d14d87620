package testutil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// Component is a control-plane process a fault test kills, restarts, pauses and
// resumes: envtest starts it; once killed, the control plane starts it again itself,
// with the same arguments, so the same ports, certificates and data directory.
type Component string

const (
	Etcd      Component = "etcd"
	APIServer Component = "kube-apiserver"
)

// component is the running process of a Component.
type component struct {
	pid  int
	args []string  // argv, read from /proc when envtest started it
	cmd  *exec.Cmd // nil while the process is envtest's
	done chan struct{}
	log  *os.File
}

// components finds etcd and kube-apiserver among this process's children (envtest
// starts them as direct children), by their executable.
func (c *ControlPlane) components() (map[Component]*component, error) {
	c.compMu.Lock()
	defer c.compMu.Unlock()
	if c.comps != nil {
		return c.comps, nil
	}
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	// The executable as the kernel names it: with every symlink resolved.
	want := map[string]Component{}
	for _, comp := range []Component{Etcd, APIServer} {
		path, err := filepath.EvalSymlinks(filepath.Join(assets, string(comp)))
		if err != nil {
			return nil, err
		}
		want[path] = comp
	}
	found := map[Component]*component{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || parentOf(pid) != os.Getpid() {
			continue
		}
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if comp, ok := want[exe]; ok {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if err != nil {
				return nil, err
			}
			found[comp] = &component{pid: pid, args: strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")}
		}
	}
	if len(found) != 2 {
		return nil, fmt.Errorf("found %d of etcd and kube-apiserver among this process's children, want both", len(found))
	}
	c.comps = found
	return found, nil
}

// parentOf is pid's parent pid, 0 if it cannot be read.
func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

func (c *ControlPlane) component(comp Component) (*component, error) {
	comps, err := c.components()
	if err != nil {
		return nil, err
	}
	return comps[comp], nil
}

// Pid is comp's process ID now.
func (c *ControlPlane) Pid(comp Component) (int, error) {
	p, err := c.component(comp)
	if err != nil {
		return 0, err
	}
	return p.pid, nil
}

// Kill SIGKILLs comp and waits until it is gone. Restart starts it again.
func (c *ControlPlane) Kill(comp Component) error {
	p, err := c.component(comp)
	if err != nil {
		return err
	}
	if err := syscall.Kill(p.pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("killing %s (pid %d): %w", comp, p.pid, err)
	}
	if p.done != nil {
		<-p.done
		return nil
	}
	// envtest's goroutine waits for its own process: wait until it has reaped it.
	return wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 30*time.Second, true,
		func(context.Context) (bool, error) {
			_, err := os.Stat(fmt.Sprintf("/proc/%d", p.pid))
			return os.IsNotExist(err), nil
		})
}

// Restart starts comp again, after Kill, with the arguments it ran with: the same
// ports, certificates and data. It does not wait for it to serve (see Ready).
func (c *ControlPlane) Restart(comp Component) error {
	p, err := c.component(comp)
	if err != nil {
		return err
	}
	if p.log == nil {
		if p.log, err = os.OpenFile(filepath.Join(c.dir, string(comp)+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
			return err
		}
	}
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Stdout, cmd.Stderr = p.log, p.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("restarting %s: %w", comp, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	c.compMu.Lock()
	p.pid, p.cmd, p.done = cmd.Process.Pid, cmd, done
	c.compMu.Unlock()
	return nil
}

// Pause stops comp with SIGSTOP; Resume continues it.
func (c *ControlPlane) Pause(comp Component) error { return c.signal(comp, syscall.SIGSTOP) }

// Resume continues comp with SIGCONT after Pause.
func (c *ControlPlane) Resume(comp Component) error { return c.signal(comp, syscall.SIGCONT) }

func (c *ControlPlane) signal(comp Component, sig syscall.Signal) error {
	p, err := c.component(comp)
	if err != nil {
		return err
	}
	if err := syscall.Kill(p.pid, sig); err != nil {
		return fmt.Errorf("%s to %s (pid %d): %w", sig, comp, p.pid, err)
	}
	return nil
}

// Ready waits until kube-apiserver answers /readyz (which checks etcd too).
func (c *ControlPlane) Ready(ctx context.Context, timeout time.Duration) error {
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		_, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(rctx)
		return err == nil, nil
	})
}

// stopRestarted stops the processes the control plane restarted itself (envtest
// stops its own), kube-apiserver first.
func (c *ControlPlane) stopRestarted() {
	c.compMu.Lock()
	defer c.compMu.Unlock()
	for _, comp := range []Component{APIServer, Etcd} {
		p := c.comps[comp]
		if p == nil {
			continue
		}
		_ = syscall.Kill(p.pid, syscall.SIGCONT) // a paused process would not stop
		if p.cmd == nil {
			continue
		}
		_ = p.cmd.Process.Kill()
		<-p.done
		if p.log != nil {
			_ = p.log.Close()
		}
	}
}
