package supervisor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// child is one run of the command: a process that leads its own process group.
type child struct {
	cmd       *exec.Cmd
	pid       int
	epoch     int32
	startedAt time.Time

	// stopping: SIGTERM was sent at termAt; SIGKILL follows at killAt.
	stopping       bool
	termAt, killAt time.Time
	killed         bool
}

// exited is a child's end, from its wait goroutine.
type exited struct {
	c   *child
	err error
	at  time.Time
}

// startChild starts command for epoch. The child is the leader of a new process
// group (so that signals reach everything it starts, and a terminal's Ctrl-C reaches
// only the elector, which stops it by the rules) and, on Linux, gets SIGKILL when
// this process dies (Pdeathsig). Pdeathsig fires when the thread that forked exits,
// not the process: the fork happens on a goroutine locked to its thread until the
// child has been reaped, since the Go runtime may end a thread a locked goroutine
// leaves. done receives the child's end.
func startChild(command, env []string, stdout, stderr io.Writer, epoch int32, done chan<- exited) (*child, error) {
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = stdout, stderr // *os.File: handed over, no copying goroutine
	cmd.SysProcAttr = sysProcAttr()
	c := &child{cmd: cmd, epoch: epoch}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		c.pid, c.startedAt = cmd.Process.Pid, time.Now()
		started <- nil
		err := cmd.Wait()
		done <- exited{c: c, err: err, at: time.Now()}
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("starting %s: %w", command[0], err)
	}
	return c, nil
}

// signal sends sig to the child's whole process group.
func (c *child) signal(sig syscall.Signal) error {
	err := syscall.Kill(-c.pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil // the group is gone already
	}
	return err
}

// exitCode is the shell's convention: the exit status, or 128 + the signal number
// for a child a signal ended.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return 1
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ee.ExitCode()
}

// startFailureCode is what a shell exits with when it cannot run a command: 127
// when it does not exist, 126 otherwise.
func startFailureCode(err error) int {
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		return 127
	}
	return 126
}
