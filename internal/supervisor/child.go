package supervisor

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// child is one run of the command, under its guardian (guardian.go): the guardian
// is the process this one starts and waits for, and it lives as long as any process
// of the command's tree.
type child struct {
	guardian  *exec.Cmd
	control   *os.File // the guardian's control pipe; its end kills the tree
	pid       int      // the command's
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

// startChild starts command for epoch under a guardian, and returns once the
// guardian has reported the command started (or why it could not). The guardian
// is in a process group of its own, so that a terminal's Ctrl-C reaches only the
// elector, which stops the child by the rules; it has no parent-death signal: it
// must outlive this process, to kill the tree. done receives the guardian's end,
// which is the tree's.
func startChild(command, env []string, stdout, stderr io.Writer, epoch int32, done chan<- exited) (*child, error) {
	exe, err := guardianPath()
	if err != nil {
		return nil, fmt.Errorf("finding this executable for the guardian: %w", err)
	}
	controlR, control, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	reportR, reportW, err := os.Pipe()
	if err != nil {
		_, _ = controlR.Close(), control.Close()
		return nil, err
	}
	g := exec.Command(exe, command...)
	g.Args[0] = filepath.Base(os.Args[0]) + "-guardian" // for ps
	g.Env = append(append(os.Environ(), env...), guardianEnv+"=1")
	g.Stdout, g.Stderr = stdout, stderr          // *os.File: handed over, no copying goroutine
	g.ExtraFiles = []*os.File{controlR, reportW} // controlFD, reportFD
	g.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = g.Start()
	_, _ = controlR.Close(), reportW.Close()
	if err != nil {
		_, _ = control.Close(), reportR.Close()
		return nil, fmt.Errorf("starting the guardian: %w", err)
	}
	pid, err := readReport(reportR)
	_ = reportR.Close()
	if err != nil {
		_ = control.Close()
		_ = g.Wait()
		return nil, fmt.Errorf("starting %s: %w", command[0], err)
	}
	c := &child{guardian: g, control: control, pid: pid, epoch: epoch, startedAt: time.Now()}
	go func() {
		err := g.Wait()
		done <- exited{c: c, err: err, at: time.Now()}
	}()
	return c, nil
}

// startError is the guardian's report that the command could not start.
type startError struct {
	code int
	msg  string
}

func (e *startError) Error() string { return e.msg }

// readReport reads the guardian's one line: "ok PID" or "err CODE MESSAGE".
func readReport(r io.Reader) (int, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("the guardian ended without a report: %w", err)
	}
	var pid, code int
	if _, err := fmt.Sscanf(line, "ok %d\n", &pid); err == nil {
		return pid, nil
	}
	if _, err := fmt.Sscanf(line, "err %d", &code); err == nil {
		_, msg, _ := strings.Cut(strings.TrimSpace(strings.TrimPrefix(line, "err ")), " ")
		return 0, &startError{code: code, msg: msg}
	}
	return 0, fmt.Errorf("the guardian reported %q", line)
}

// signal asks the guardian to send SIGTERM to every process of the tree, or to
// SIGKILL them all.
func (c *child) signal(sig syscall.Signal) error {
	order := byte(cmdTerm)
	if sig == syscall.SIGKILL {
		order = cmdKill
	}
	_, err := c.control.Write([]byte{order})
	if errors.Is(err, syscall.EPIPE) {
		return nil // the guardian is gone already, and the tree with it
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
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
		return statusCode(ws)
	}
	return ee.ExitCode()
}

// statusCode is exitCode for a wait status: the guardian exits with the command's.
func statusCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// startFailureCode is what a shell exits with when it cannot run a command: 127
// when it does not exist, 126 otherwise.
func startFailureCode(err error) int {
	var se *startError
	if errors.As(err, &se) {
		return se.code // the guardian's
	}
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		return 127
	}
	return 126
}
