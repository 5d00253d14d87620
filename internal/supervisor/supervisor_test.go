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

func TestGroupDiesWithTheChild(t *testing.T) {
	// The shell starts a grandchild in its group, reports it, and exits on SIGTERM
	// while the grandchild ignores it.
	h := newHarness(t, `(trap "" TERM; echo "0 $(exec sh -c 'echo $PPID')" >> "$CHILDREN"; while :; do sleep 0.05; done) & wait`)
	h.s.Lead(1)
	all := h.waitChildren(2)
	h.s.Lost(time.Now())
	for _, c := range all {
		h.waitDead(c.pid, 5*time.Second)
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
	s := New(Config{Command: []string{"/nonexistent/" + strconv.Itoa(os.Getpid())}, Logger: testr.New(t),
		Budget: Budget{LeaseDuration: testLease, RenewDeadline: testDeadline}})
	s.Start()
	s.Lead(1)
	select {
	case ex := <-s.Exited():
		if ex.Code != 127 || ex.Err == nil {
			t.Errorf("exit %+v, want code 127 with an error", ex)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no exit reported")
	}
}
