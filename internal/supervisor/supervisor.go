// Package supervisor runs a command only while an elector leads: it starts a child
// process when a term begins and stops it and every process it started, SIGTERM then
// SIGKILL, so that they are dead before anyone else can take the Lease over (see
// Budget for the rule). A guardian process (guardian.go) holds the tree, so that it
// dies with the elector too, however the elector dies.
package supervisor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
)

// Config describes the child and its timings.
type Config struct {
	// Command is the program and its arguments; it must not be empty.
	Command []string
	// Env returns the variables added to the child's environment for a term.
	Env func(epoch int32) []string
	// Budget gives the grace period and the kill horizon.
	Budget Budget
	// Restart starts the child again, after a backoff, when it exits by itself while
	// the elector leads. Without it, the exit is reported on Exited.
	Restart bool
	// Stdout and Stderr default to this process's.
	Stdout, Stderr io.Writer
	Logger         logr.Logger
}

// Exit is how a child ended by itself.
type Exit struct {
	// Code is its exit status (128 + signal when a signal ended it; 126 or 127 when
	// it could not start).
	Code int
	Err  error
}

// Supervisor runs at most one child at a time. Its methods return at once: they
// only queue an event for its goroutine, so an elector's callbacks may call them.
type Supervisor struct {
	cfg    Config
	events chan any
	exits  chan Exit

	mu     sync.Mutex
	health *child // the child being stopped, for Check
}

type (
	leadEvent struct{ epoch int32 }
	lostEvent struct {
		lastRenewal time.Time
		done        chan struct{} // nil from Lost
	}
	shutdownEvent struct {
		lastRenewal time.Time
		done        chan struct{}
	}
)

// New returns a supervisor; Start runs it.
func New(cfg Config) *Supervisor {
	if !guardianReady {
		panic("supervisor: main must call supervisor.MaybeRunGuardian first")
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	if cfg.Env == nil {
		cfg.Env = func(int32) []string { return nil }
	}
	return &Supervisor{cfg: cfg, events: make(chan any, 64), exits: make(chan Exit, 1)}
}

// Start runs the supervisor's goroutine, for the life of the process.
func (s *Supervisor) Start() { go s.loop() }

// Lead starts a child for the term epoch, once the previous child (if any) is gone.
func (s *Supervisor) Lead(epoch int32) { s.events <- leadEvent{epoch} }

// Lost stops the child at once: leadership ended. lastRenewal is the send time of
// the term's last successful renewal; the child gets SIGKILL no later than
// lastRenewal + leaseDuration - safety margin.
func (s *Supervisor) Lost(lastRenewal time.Time) { s.events <- lostEvent{lastRenewal: lastRenewal} }

// Sick stops the child as Lost does, while the elector still leads: the child
// must be gone before the elector steps down and releases the Lease. No child
// starts until the next Lead. The returned channel is closed once the child that
// ran, if any, is gone.
func (s *Supervisor) Sick(lastRenewal time.Time) <-chan struct{} {
	done := make(chan struct{})
	s.events <- lostEvent{lastRenewal, done}
	return done
}

// Shutdown stops the child, if one runs, by the same rules (lastRenewal is zero
// when the elector does not lead), and never starts another. The returned channel
// is closed once no child runs. Calling it again SIGKILLs the child at once.
func (s *Supervisor) Shutdown(lastRenewal time.Time) <-chan struct{} {
	done := make(chan struct{})
	s.events <- shutdownEvent{lastRenewal, done}
	return done
}

// Exited delivers the child's end when it exits by itself while leading and is
// not restarted. No child starts after that.
func (s *Supervisor) Exited() <-chan Exit { return s.exits }

// Check fails when a child outlives its SIGKILL by more than a second, which only a
// process stuck in the kernel does; the safety rule no longer holds then.
func (s *Supervisor) Check() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.health; c != nil && c.killed && time.Since(c.killAt) > time.Second {
		return fmt.Errorf("child pid %d is still alive %s after its SIGKILL", c.pid, time.Since(c.killAt).Round(time.Millisecond))
	}
	return nil
}

// state is what only the supervisor's goroutine touches.
type state struct {
	s       *Supervisor
	log     logr.Logger
	leading bool
	epoch   int32
	cur     *child
	// ended: the child exited by itself and was not restarted; shutting: Shutdown
	// was called. Either way no child starts again.
	ended, shutting bool
	waiters         []chan struct{}
	gone            []chan struct{} // Sick's: closed when the current child exits
	kill, restart   *time.Timer
	restarting      bool
	failures        int
	exitCh          chan exited
}

func (s *Supervisor) loop() {
	st := &state{s: s, log: s.cfg.Logger, kill: stoppedTimer(), restart: stoppedTimer(), exitCh: make(chan exited, 1)}
	for {
		select {
		case ev := <-s.events:
			switch ev := ev.(type) {
			case leadEvent:
				st.lead(ev.epoch)
			case lostEvent:
				st.lost(ev.lastRenewal, ev.done)
			case shutdownEvent:
				st.shutdown(ev.lastRenewal, ev.done)
			}
		case ex := <-st.exitCh:
			st.exited(ex)
		case <-st.kill.C:
			if c := st.cur; c != nil && c.stopping && !c.killed {
				st.killNow(c, "grace period over")
			}
		case <-st.restart.C:
			st.restarting = false
			if st.leading && st.cur == nil && !st.ended && !st.shutting {
				st.start()
			}
		}
	}
}

func (st *state) lead(epoch int32) {
	st.leading, st.epoch = true, epoch
	switch {
	case st.ended || st.shutting:
	case st.cur == nil:
		st.failures = 0
		st.start()
	case !st.cur.stopping:
		// Not expected (a term ends before the next begins), but the old term's
		// child must not run into the new one.
		st.stop(st.cur, time.Time{})
	}
	// Otherwise the previous term's child is still stopping: the new one starts
	// when it has exited.
}

func (st *state) lost(lastRenewal time.Time, done chan struct{}) {
	st.leading = false
	st.cancelRestart()
	if st.cur != nil {
		st.stop(st.cur, lastRenewal)
	}
	switch {
	case done == nil:
	case st.cur == nil:
		close(done)
	default:
		st.gone = append(st.gone, done)
	}
}

func (st *state) shutdown(lastRenewal time.Time, done chan struct{}) {
	again := st.shutting
	st.shutting = true
	st.cancelRestart()
	if st.cur == nil {
		close(done)
		return
	}
	st.waiters = append(st.waiters, done)
	if again {
		st.killNow(st.cur, "asked again to stop")
		return
	}
	st.stop(st.cur, lastRenewal)
}

func (st *state) start() {
	cfg := st.s.cfg
	c, err := startChild(cfg.Command, cfg.Env(st.epoch), cfg.Stdout, cfg.Stderr, st.epoch, st.exitCh)
	if err != nil {
		st.log.Error(err, "Cannot start the child", "epoch", st.epoch)
		st.finished(Exit{Code: startFailureCode(err), Err: err}, 0)
		return
	}
	st.cur = c
	st.log.Info("Started child", "pid", c.pid, "guardian", c.guardian.Process.Pid, "epoch", c.epoch, "command", cfg.Command)
}

// stop sends SIGTERM (the first time) and sets the SIGKILL deadline, which a later
// call may only bring forward.
func (st *state) stop(c *child, lastRenewal time.Time) {
	b := st.s.cfg.Budget
	now := time.Now()
	if !c.stopping {
		c.stopping, c.termAt = true, now
		c.killAt = KillDeadline(now, lastRenewal, b.Grace(), b.Horizon())
		if err := c.signal(syscall.SIGTERM); err != nil {
			st.log.Error(err, "Cannot send SIGTERM to the child", "pid", c.pid)
		}
		st.log.Info("Stopping child", "pid", c.pid, "epoch", c.epoch, "signal", "SIGTERM",
			"killAt", c.killAt, "grace", c.killAt.Sub(now).Round(time.Millisecond))
	} else if at := KillDeadline(c.termAt, lastRenewal, b.Grace(), b.Horizon()); at.Before(c.killAt) {
		c.killAt = at
	}
	st.s.setHealth(c)
	if c.killed {
		return
	}
	if !now.Before(c.killAt) {
		st.killNow(c, "deadline already passed")
		return
	}
	st.kill.Reset(c.killAt.Sub(now))
}

func (st *state) killNow(c *child, why string) {
	if err := c.signal(syscall.SIGKILL); err != nil {
		st.log.Error(err, "Cannot send SIGKILL to the child", "pid", c.pid)
	}
	now := time.Now()
	if !c.stopping {
		c.stopping, c.termAt = true, now
	}
	c.killed, c.killAt = true, now
	st.s.setHealth(c)
	st.log.Info("Killed child", "pid", c.pid, "epoch", c.epoch, "signal", "SIGKILL", "reason", why)
}

func (st *state) exited(ex exited) {
	c := ex.c
	_ = c.control.Close()
	var ee *exec.ExitError
	if errors.As(ex.err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() {
		// The guardian itself was killed, and the command with it (parent-death
		// signal); what is left of the command's process group does not outlive it.
		_ = syscall.Kill(-c.pid, syscall.SIGKILL)
	}
	st.kill.Stop()
	st.cur = nil
	st.s.setHealth(nil)
	for _, g := range st.gone {
		close(g)
	}
	st.gone = nil
	code := exitCode(ex.err)
	st.log.Info("Child exited", "pid", c.pid, "epoch", c.epoch, "code", code, "stopped", c.stopping,
		"ranFor", ex.at.Sub(c.startedAt).Round(time.Millisecond))
	switch {
	case st.shutting:
		for _, w := range st.waiters {
			close(w)
		}
		st.waiters = nil
	case c.stopping:
		if st.leading && !st.ended {
			st.failures = 0
			st.start() // a new term began while this one's child was stopping
		}
	default:
		st.finished(Exit{Code: code, Err: ex.err}, ex.at.Sub(c.startedAt))
	}
}

// finished handles a child that ended by itself (or did not start) while leading.
func (st *state) finished(ex Exit, ranFor time.Duration) {
	if st.s.cfg.Restart && st.leading {
		if ranFor >= maxRestartDelay {
			st.failures = 0
		}
		delay := restartDelay(st.failures)
		st.failures++
		st.restarting = true
		st.restart.Reset(delay)
		st.log.Info("Restarting child", "in", delay, "code", ex.Code)
		return
	}
	st.ended = true
	select {
	case st.s.exits <- ex:
	default:
	}
}

func (st *state) cancelRestart() {
	if st.restarting {
		st.restart.Stop()
		st.restarting = false
	}
}

func (s *Supervisor) setHealth(c *child) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c == nil {
		s.health = nil
		return
	}
	cp := *c
	cp.guardian, cp.control = nil, nil
	s.health = &cp
}

// maxRestartDelay caps the backoff between restarts; a child that ran at least that
// long starts the backoff over.
const maxRestartDelay = 30 * time.Second

// restartDelay is 1s, 2s, 4s... up to maxRestartDelay.
func restartDelay(failures int) time.Duration {
	d := time.Second
	for range failures {
		if d *= 2; d >= maxRestartDelay {
			return maxRestartDelay
		}
	}
	return d
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}
