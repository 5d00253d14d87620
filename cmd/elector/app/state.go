package app

import (
	"context"
	"sync"
	"time"

	"github.com/election-manager/election-manager/internal/election"
)

// leaderView is the answer of /leader.
type leaderView struct {
	// Identity is this process's identity; Lease is namespace/name; Group is the
	// LeaderGroup's namespace/name, empty without one.
	Identity string `json:"identity"`
	Lease    string `json:"lease"`
	Group    string `json:"group,omitempty"`
	// Holder is who holds the Lease as this process sees it, "" when nobody does;
	// Epoch its term's fencing token (the Lease's leaseTransitions).
	Holder string `json:"holder"`
	Epoch  int32  `json:"epoch"`
	// Since is when this process first saw this holder and epoch (or acquired them).
	Since *time.Time `json:"since,omitempty"`
	// Leading: this process leads now.
	Leading bool `json:"leading"`
	// StepDown is this process's last step-down, absent if it never stepped down.
	StepDown *stepDownView `json:"stepDown,omitempty"`
}

// stepDownView says why and when this process last gave up the Lease by itself.
type stepDownView struct {
	// Reason is why: the failed health checks and the last one's error.
	Reason string `json:"reason"`
	// At is when it stepped down (its child gone, the release about to be sent);
	// Until, when its back-off ends: it does not campaign before.
	At    time.Time `json:"at"`
	Until time.Time `json:"until"`
}

// leaderState publishes the elector's view to /leader and its watchers: every
// change of holder, epoch or leading wakes them. The elector's callbacks publish at
// once; a short poll catches what no callback reports (a holder that re-acquires
// with a higher epoch, leadership ending on the clock before the callback runs).
type leaderState struct {
	read func() election.LeaderInfo

	mu      sync.Mutex
	base    leaderView // what the elector does not tell: identity, lease, step-down
	cur     leaderView
	changed chan struct{} // closed and replaced at every change
}

func newLeaderState(base leaderView, read func() election.LeaderInfo) *leaderState {
	s := &leaderState{read: read, base: base, cur: base, changed: make(chan struct{})}
	return s
}

// publish reads the elector's view and wakes the watchers if it changed.
func (s *leaderState) publish() {
	info := s.read()
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.base
	v.Holder, v.Epoch, v.Leading = info.Holder, info.Epoch, info.Leading
	if !info.Since.IsZero() {
		since := info.Since.UTC()
		v.Since = &since
	}
	if v.Holder == s.cur.Holder && v.Epoch == s.cur.Epoch && v.Leading == s.cur.Leading {
		return
	}
	s.set(v)
}

// steppedDown records a step-down at at, with its back-off, and wakes the watchers.
func (s *leaderState) steppedDown(reason string, at time.Time, backoff time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base.StepDown = &stepDownView{Reason: reason, At: at.UTC(), Until: at.Add(backoff).UTC()}
	v := s.cur
	v.StepDown = s.base.StepDown
	s.set(v)
}

// set makes v the current view and wakes the watchers; s.mu is held.
func (s *leaderState) set(v leaderView) {
	s.cur = v
	close(s.changed)
	s.changed = make(chan struct{})
}

// get returns the current view and a channel closed at the next change.
func (s *leaderState) get() (leaderView, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur, s.changed
}

// poll publishes every interval until ctx ends.
func (s *leaderState) poll(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.publish()
		}
	}
}
