//go:build linux

package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Real processes (sh): each child appends "EPOCH PID" to a file, so the test knows
// what runs; a pid is dead once kill(pid, 0) fails (the supervisor reaps at once).

const (
	testLease    = 6 * time.Second
	testDeadline = 3 * time.Second
)

type harness struct {
	t    *testing.T
	s    *Supervisor
	file string
}

func newHarness(t *testing.T, script string, edit ...func(*Config)) *harness {
	t.Helper()
	file := filepath.Join(t.TempDir(), "children")
	cfg := Config{
		Command: []string{"sh", "-c", `echo "$ELECTION_EPOCH $$" >> "$CHILDREN"; ` + script},
		Env: func(epoch int32) []string {
			return []string{fmt.Sprintf("ELECTION_EPOCH=%d", epoch), "CHILDREN=" + file}
		},
		Budget: Budget{LeaseDuration: testLease, RenewDeadline: testDeadline},
		Logger: testr.New(t),
	}
	for _, e := range edit {
		e(&cfg)
	}
	h := &harness{t: t, s: New(cfg), file: file}
	h.s.Start()
	t.Cleanup(func() {
		select {
		case <-h.s.Shutdown(time.Time{}):
		case <-time.After(10 * time.Second):
		}
		<-h.s.Shutdown(time.Time{})
	})
	return h
}

type started struct{ epoch, pid int }

func (h *harness) children() []started {
	b, _ := os.ReadFile(h.file)
	var out []started
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var s started
		if _, err := fmt.Sscanf(line, "%d %d", &s.epoch, &s.pid); err == nil {
			out = append(out, s)
		}
	}
	return out
}

func (h *harness) waitChildren(n int) []started {
	h.t.Helper()
	h.eventually(5*time.Second, fmt.Sprintf("%d children started", n), func() bool { return len(h.children()) >= n })
	return h.children()
}

func (h *harness) eventually(timeout time.Duration, what string, cond func() bool) {
	h.t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, timeout, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		h.t.Fatalf("%s: not within %s", what, timeout)
	}
}

// alive: the process exists and is not a zombie (an orphan waits for init to reap it).
func alive(pid int) bool {
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// pid (comm) state ...: comm may hold spaces, the state follows the last ')'.
	rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
	state := strings.Fields(rest)[0]
	return state != "Z" && state != "X"
}

// waitDead returns when pid died (within a poll interval).
func (h *harness) waitDead(pid int, timeout time.Duration) time.Time {
	h.t.Helper()
	h.eventually(timeout, fmt.Sprintf("pid %d dead", pid), func() bool { return !alive(pid) })
	return time.Now()
}

func TestChildRunsOnlyWhileLeading(t *testing.T) {
	h := newHarness(t, `exec sleep 60`)
	h.s.Lead(3)
	c := h.waitChildren(1)[0]
	if c.epoch != 3 {
		t.Errorf("child saw epoch %d, want 3", c.epoch)
	}
	lost := time.Now()
	h.s.Lost(lost)
	if took := h.waitDead(c.pid, 2*time.Second).Sub(lost); took > time.Second {
		t.Errorf("a child that obeys SIGTERM took %s to die", took)
	}
	h.s.Lead(4)
	if c := h.waitChildren(2)[1]; c.epoch != 4 {
		t.Errorf("the next term's child saw epoch %d, want 4", c.epoch)
	}
}

func TestChildIgnoringSIGTERMIsKilledByTheLeaseBound(t *testing.T) {
	h := newHarness(t, `trap "" TERM; while :; do sleep 0.05; done`)
	h.s.Lead(1)
	c := h.waitChildren(1)[0]
	// Leadership ended late: the last renewal was renewDeadline + 1s ago, so only
	// horizon - (renewDeadline + 1s) = 1.44s remain, not the 2.44s grace period.
	lastRenewal := time.Now().Add(-testDeadline - time.Second)
	h.s.Lost(lastRenewal)
	dead := h.waitDead(c.pid, 5*time.Second)
	bound := lastRenewal.Add(Budget{LeaseDuration: testLease, RenewDeadline: testDeadline}.Horizon())
	if dead.After(bound.Add(500 * time.Millisecond)) {
		t.Errorf("died %s after the bound", dead.Sub(bound))
	}
	if dead.Before(bound.Add(-200 * time.Millisecond)) {
		t.Errorf("died %s before the bound: SIGTERM was not ignored?", bound.Sub(dead))
	}
}

func TestStoppedChildsDescendantsGetTheGracePeriod(t *testing.T) {
	// The shell exits on SIGTERM at once; the grandchild it started ignores SIGTERM
	// and lives on to the kill deadline. The next term's child waits for it.
	h := newHarness(t, `(trap "" TERM; echo "0 $(exec sh -c 'echo $PPID')" >> "$CHILDREN"; while :; do sleep 0.05; done) & wait`)
	h.s.Lead(1)
	all := h.waitChildren(2)
	lost := time.Now()
	h.s.Lost(lost)
	h.s.Lead(2)
	shell := h.waitDead(all[0].pid, 5*time.Second)
	if took := shell.Sub(lost); took > time.Second {
		t.Errorf("the shell took %s to die of SIGTERM", took)
	}
	if n := len(h.children()); n != 2 {
		t.Errorf("the next term's child started while the grandchild pid %d lives", all[1].pid)
	}
	grandchild := h.waitDead(all[1].pid, 5*time.Second)
	killAt := lost.Add(Budget{LeaseDuration: testLease, RenewDeadline: testDeadline}.Grace())
	if d := grandchild.Sub(killAt); d < -200*time.Millisecond || d > 500*time.Millisecond {
		t.Errorf("the grandchild died %s after the kill deadline, want about 0", d)
	}
	if c := h.waitChildren(3)[2]; c.epoch != 2 {
		t.Errorf("the next term's child saw epoch %d, want 2", c.epoch)
	}
}

// descendants waits for n pids in the file $CHILDREN.tree (the tests' scripts write
// "$!" there) and checks that each is a `sleep 1001.5` of this test; the test's
// cleanup kills any that survive it.
func (h *harness) descendants(n int) []int {
	h.t.Helper()
	var pids []int
	h.eventually(5*time.Second, fmt.Sprintf("%d descendants started", n), func() bool {
		b, _ := os.ReadFile(h.file + ".tree")
		pids = pids[:0]
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return len(pids) >= n && isTestSleep(pids[n-1])
	})
	for _, pid := range pids {
		if !isTestSleep(pid) {
			h.t.Fatalf("pid %d is not a test sleep", pid)
		}
		h.t.Cleanup(func() {
			if isTestSleep(pid) && alive(pid) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		})
	}
	return pids
}

// testSleep is what the scripts' descendants run: a duration no other program uses.
const testSleep = "sleep 1001.5"

func isTestSleep(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Join(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"), " ") == testSleep
}

// session is pid's session ID.
func session(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// pid (comm) state ppid pgrp session ...
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	sid, _ := strconv.Atoi(f[3])
	return sid
}

// treeScript starts two sleeps, one in the child's process group and one that
// called setsid, records their pids, and waits.
const treeScript = testSleep + ` </dev/null >/dev/null 2>&1 & echo $! >> "$CHILDREN.tree"; ` +
	`setsid ` + testSleep + ` </dev/null >/dev/null 2>&1 & echo $! >> "$CHILDREN.tree"; wait`

func TestSIGTERMReachesEveryDescendant(t *testing.T) {
	h := newHarness(t, treeScript)
	h.s.Lead(1)
	c := h.waitChildren(1)[0]
	tree := h.descendants(2)
	if session(t, tree[1]) == session(t, c.pid) {
		t.Fatalf("pid %d did not leave the child's session", tree[1])
	}
	lost := time.Now()
	h.s.Lost(lost)
	// SIGKILL comes only after the 2.44s grace period: dying within a second
	// means SIGTERM reached them.
	for _, pid := range append([]int{c.pid}, tree...) {
		if took := h.waitDead(pid, 5*time.Second).Sub(lost); took > time.Second {
			t.Errorf("pid %d took %s to die: SIGTERM did not reach it", pid, took)
		}
	}
}

func TestEveryDescendantDiesByTheKillDeadline(t *testing.T) {
	// The ignored SIGTERM is inherited: only SIGKILL ends any of them.
	h := newHarness(t, `trap "" TERM; `+treeScript)
	h.s.Lead(1)
	c := h.waitChildren(1)[0]
	tree := h.descendants(2)
	lastRenewal := time.Now().Add(-testDeadline - time.Second)
	h.s.Lost(lastRenewal)
	bound := lastRenewal.Add(Budget{LeaseDuration: testLease, RenewDeadline: testDeadline}.Horizon())
	for _, pid := range append([]int{c.pid}, tree...) {
		dead := h.waitDead(pid, 5*time.Second)
		if dead.After(bound.Add(500 * time.Millisecond)) {
			t.Errorf("pid %d died %s after the bound", pid, dead.Sub(bound))
		}
		if dead.Before(bound.Add(-200 * time.Millisecond)) {
			t.Errorf("pid %d died %s before the bound: SIGTERM was not ignored?", pid, bound.Sub(dead))
		}
	}
}

func TestDescendantsDieWithTheChild(t *testing.T) {
	// The child leaves a daemon behind and exits by itself once the test has seen
	// the daemon in a session of its own.
	h := newHarness(t, `setsid `+testSleep+` </dev/null >/dev/null 2>&1 & echo $! >> "$CHILDREN.tree"; `+
		`while [ ! -e "$CHILDREN.exit" ]; do sleep 0.01; done; exit 3`)
	h.s.Lead(1)
	c := h.waitChildren(1)[0]
	daemon := h.descendants(1)[0]
	if session(t, daemon) == session(t, c.pid) {
		t.Fatalf("pid %d did not leave the child's session", daemon)
	}
	if err := os.WriteFile(h.file+".exit", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case ex := <-h.s.Exited():
		if ex.Code != 3 {
			t.Errorf("exit code %d, want 3", ex.Code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no exit reported")
	}
	// Exited is reported once the whole tree is gone.
	if alive(daemon) {
		t.Errorf("the daemon pid %d outlived the child's reported exit", daemon)
	}
}

func TestChildExitIsReported(t *testing.T) {
	h := newHarness(t, `exit 7`)
	h.s.Lead(1)
	select {
	case ex := <-h.s.Exited():
		if ex.Code != 7 {
			t.Errorf("exit code %d, want 7", ex.Code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no exit reported")
	}
	h.s.Lead(2) // no child starts after a reported exit
	h.s.Lost(time.Now())
	<-h.s.Shutdown(time.Time{})
	if n := len(h.children()); n != 1 {
		t.Errorf("%d children started, want 1", n)
	}
}

func TestChildIsRestarted(t *testing.T) {
	h := newHarness(t, `exit 1`, func(c *Config) { c.Restart = true })
	h.s.Lead(5)
	start := time.Now()
	all := h.waitChildren(2)
	if took := time.Since(start); took < time.Second {
		t.Errorf("restarted after %s, want a backoff of 1s", took)
	}
	if all[1].epoch != 5 {
		t.Errorf("the restarted child saw epoch %d, want 5", all[1].epoch)
	}
	select {
	case ex := <-h.s.Exited():
		t.Errorf("exit reported despite Restart: %+v", ex)
	default:
	}
}

func TestShutdownTwiceKillsAtOnce(t *testing.T) {
	h := newHarness(t, `trap "" TERM; while :; do sleep 0.05; done`)
	h.s.Lead(1)
	c := h.waitChildren(1)[0]
	done := h.s.Shutdown(time.Time{}) // SIGTERM, ignored; SIGKILL due in 2.44s
	again := time.Now()
	h.s.Shutdown(time.Time{})
	<-done
	if took := time.Since(again); took > time.Second {
		t.Errorf("second shutdown took %s to kill", took)
	}
	if alive(c.pid) {
		t.Errorf("the child survived")
	}
}

func TestNewTermWaitsForThePreviousChild(t *testing.T) {
	// The child takes 300ms to stop; the next term begins at once.
	h := newHarness(t, `trap 'sleep 0.3; echo "stop $ELECTION_EPOCH" >> "$CHILDREN.stops"; exit 0' TERM; while :; do sleep 0.02; done`)
	h.s.Lead(1)
	first := h.waitChildren(1)[0]
	h.s.Lost(time.Now())
	h.s.Lead(2)
	second := h.waitChildren(2)[1]
	if b, _ := os.ReadFile(h.file + ".stops"); !strings.Contains(string(b), "stop 1") {
		t.Errorf("the epoch 2 child (pid %d) started before the epoch 1 child (pid %d) stopped", second.pid, first.pid)
	}
}

func TestStartFailure(t *testing.T) {
	notExecutable := filepath.Join(t.TempDir(), "not-executable")
	if err := os.WriteFile(notExecutable, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		command string
		code    int
	}{
		{"/nonexistent/" + strconv.Itoa(os.Getpid()), 127},
		{"no-such-command-" + strconv.Itoa(os.Getpid()), 127},
		{notExecutable, 126},
	} {
		s := New(Config{Command: []string{tc.command}, Logger: testr.New(t),
			Budget: Budget{LeaseDuration: testLease, RenewDeadline: testDeadline}})
		s.Start()
		s.Lead(1)
		select {
		case ex := <-s.Exited():
			if ex.Code != tc.code || ex.Err == nil {
				t.Errorf("%s: exit %+v, want code %d with an error", tc.command, ex, tc.code)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no exit reported", tc.command)
		}
	}
}

func TestSignalExitCode(t *testing.T) {
	h := newHarness(t, `kill -USR1 $$`)
	h.s.Lead(1)
	select {
	case ex := <-h.s.Exited():
		if want := 128 + int(syscall.SIGUSR1); ex.Code != want {
			t.Errorf("exit code %d, want %d", ex.Code, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no exit reported")
	}
}

func TestChildInheritsNothingOfTheGuardian(t *testing.T) {
	// No guardian marker (a child that embeds a supervisor would turn guardian), no
	// pipe to it, no ignored signal.
	h := newHarness(t, `env > "$CHILDREN.env"; ls -l /proc/$$/fd > "$CHILDREN.fds"; `+
		`grep SigIgn /proc/$$/status > "$CHILDREN.sigign"; exit 0`)
	h.s.Lead(1)
	select {
	case <-h.s.Exited():
	case <-time.After(5 * time.Second):
		t.Fatal("no exit reported")
	}
	read := func(name string) string {
		b, err := os.ReadFile(h.file + name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if env := read(".env"); strings.Contains(env, guardianEnv) {
		t.Errorf("the child's environment holds %s", guardianEnv)
	}
	// The guardian's pipes would be at the same numbers; the shell's own are 10 and up.
	for _, line := range strings.Split(read(".fds"), "\n") {
		if f := strings.Fields(line); len(f) > 2 && (f[len(f)-3] == "3" || f[len(f)-3] == "4") {
			t.Errorf("the child inherited the guardian's descriptor: %s", line)
		}
	}
	var mask uint64
	if _, err := fmt.Sscanf(read(".sigign"), "SigIgn: %x", &mask); err != nil {
		t.Fatal(err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		if mask&(1<<(sig-1)) != 0 {
			t.Errorf("the child ignores %s", sig)
		}
	}
}

func TestSickChildIsStoppedAndReported(t *testing.T) {
	h := newHarness(t, `exec sleep 60`)
	h.s.Lead(1)
	c := h.waitChildren(1)[0]
	gone := h.s.Sick(time.Now())
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("Sick's channel not closed within 5s of the SIGTERM")
	}
	if alive(c.pid) {
		t.Errorf("pid %d alive once Sick said it was gone", c.pid)
	}
	// No child without a new term; a new term starts one.
	h.s.Lost(time.Now())
	select {
	case <-h.s.Sick(time.Now()):
	case <-time.After(time.Second):
		t.Error("Sick without a child: its channel is not closed at once")
	}
	if n := len(h.children()); n != 1 {
		t.Errorf("%d children started, want 1", n)
	}
	h.s.Lead(2)
	if c := h.waitChildren(2)[1]; c.epoch != 2 {
		t.Errorf("the next term's child saw epoch %d, want 2", c.epoch)
	}
}
