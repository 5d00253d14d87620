package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// start runs bin as the cluster's process name, in a process group of its own (so that
// a Ctrl-C reaches only the command that started it, and Down stops things in order),
// with its output in logs/name.log and its PID in pids/name.
func (c *Cluster) start(name, bin string, args ...string) error {
	log, err := os.OpenFile(filepath.Join(c.logDir(), name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer func() { _ = log.Close() }()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { _ = cmd.Wait() }() // reap it; Down finds it by PID
	return os.WriteFile(filepath.Join(c.pidDir(), name), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
}

// Pid is the PID of the cluster's process name, or 0 when it does not run.
func (c *Cluster) Pid(name string) int {
	b, err := os.ReadFile(filepath.Join(c.pidDir(), name))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !ours(pid, name) {
		return 0
	}
	return pid
}

// ours reports whether pid is alive and runs the binary name: a PID file left by a
// cluster long gone may name someone else's process by now.
func ours(pid int, name string) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil || zombie(stat) {
		return false
	}
	return filepath.Base(strings.TrimSuffix(exe, " (deleted)")) == name
}

// zombie reports whether /proc/<pid>/stat says the process has exited.
func zombie(stat []byte) bool {
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// stop ends the cluster's process name: SIGTERM, then SIGKILL after 15 seconds.
func (c *Cluster) stop(name string) error {
	pid := c.Pid(name)
	defer func() { _ = os.Remove(filepath.Join(c.pidDir(), name)) }()
	if pid == 0 {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	gone := func(context.Context) (bool, error) { return !ours(pid, name), nil }
	if wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 15*time.Second, true, gone) == nil {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 10*time.Second, true, gone); err != nil {
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", name, pid)
	}
	return nil
}

// leftover reports whether a cluster in dir still runs or left state behind.
func leftover(dir string) bool {
	c := &Cluster{Config: Config{Dir: dir}}
	entries, _ := os.ReadDir(c.pidDir())
	for _, e := range entries {
		if c.Pid(e.Name()) != 0 {
			return true
		}
	}
	if _, err := os.Stat("/sys/class/net/" + Bridge); err == nil {
		return true
	}
	_, err := os.Stat(RunDir)
	return err == nil
}

// run runs a command to completion and returns its error with its output.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// poll waits for cond while the cluster's process name runs. It gives up at once, with
// the end of that process's log, when the process exits; and names what it waited for
// when it times out.
func (c *Cluster) poll(ctx context.Context, what, name string, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if c.Pid(name) == 0 {
			return false, fmt.Errorf("%s exited; the end of %s:\n%s", name, filepath.Join(c.logDir(), name+".log"), c.logTail(name, 10))
		}
		ok, err := cond(ctx)
		last = err
		return ok, nil
	})
	if err != nil {
		return fmt.Errorf("%s within %s: %w", what, timeout, errors.Join(err, last))
	}
	return nil
}

// logTail is the last n lines of the process's log.
func (c *Cluster) logTail(name string, n int) string {
	b, _ := os.ReadFile(filepath.Join(c.logDir(), name+".log"))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
