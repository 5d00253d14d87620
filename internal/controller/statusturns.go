package controller

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
)

// statusTurns keeps the status writer from competing with lease renewals for a
// strained API server. A LeaderGroup status PATCH costs kube-apiserver several
// Lease renewals (schema and CEL validation, managed fields, JSON, the watch
// fan-out of the whole object), and under overload every lost term brings more of
// them: a status write and its events per change. Measured at 3,000 groups that
// flapped: 4.9 status writes per transition, 12 % of kube-apiserver's CPU, and
// losses that fed themselves.
//
// So while the electors space out their renewals (the server answers slowly),
// status writes take turns: one at a time, the next turn a spacing after the last
// (the latency of the latest status write), so they go at the server's own pace. A
// group that waits gathers all its changes into the write of its turn; its history
// counts the terms it never showed as missed. When the strain ends, the groups
// still waiting are woken and written at once.
type statusTurns struct {
	strained func() bool
	clock    clock.PassiveClock

	mu sync.Mutex
	// next is the first turn nobody holds; spacing is how far apart turns are.
	next    time.Time
	spacing time.Duration
	turns   map[types.NamespacedName]time.Time
	// writing counts the status writes in flight, strained or not.
	writing int
}

// The spacing stays within these: not so short that turns mean nothing, not so long
// that status stops (a write that timed out measures its timeout).
const (
	minStatusSpacing = 10 * time.Millisecond
	maxStatusSpacing = time.Second
	// turnsRecheck is how often waiting groups are checked for the strain's end.
	turnsRecheck = time.Second
)

func newStatusTurns(strained func() bool, clk clock.PassiveClock) *statusTurns {
	return &statusTurns{strained: strained, clock: clk, spacing: 100 * time.Millisecond, turns: map[types.NamespacedName]time.Time{}}
}

// take tells how long group must wait before writing its status; 0 means now, and
// then the caller writes and calls done.
func (s *statusTurns) take(group types.NamespacedName) time.Duration {
	strained := s.strained()
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if strained {
		turn, ok := s.turns[group]
		if !ok || (!now.Before(turn) && s.writing > 0) {
			// A new turn: the first free one, or, when its turn came while the last
			// write was still out (the spacing was short), the next free one after
			// that write; waiting groups never poll.
			turn = latest(s.next, now)
			if s.writing > 0 {
				turn = latest(turn, now.Add(s.spacing))
			}
			s.next = turn.Add(s.spacing)
			s.turns[group] = turn
		}
		if now.Before(turn) {
			return turn.Sub(now)
		}
		delete(s.turns, group)
	} else {
		// Turns handed out in an earlier strain say nothing about the next one.
		s.next = time.Time{}
	}
	s.writing++
	return 0
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// done ends a status write that took latency; that spaces the next turns.
func (s *statusTurns) done(latency time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writing--
	s.spacing = min(max(latency, minStatusSpacing), maxStatusSpacing)
}

// forget drops a deleted group's turn.
func (s *statusTurns) forget(group types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.turns, group)
}

// released returns and forgets the groups that hold turns, once the strain is over.
func (s *statusTurns) released() []types.NamespacedName {
	if s.strained() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	groups := make([]types.NamespacedName, 0, len(s.turns))
	for g := range s.turns {
		groups = append(groups, g)
	}
	clear(s.turns)
	return groups
}

// waiting counts the groups that hold a turn.
func (s *statusTurns) waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.turns)
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// releaseTurns wakes the groups still waiting for a turn when the strain ends, so
// that none waits out a turn it no longer needs, and samples the strain's metrics.
func (r *LeaderGroupReconciler) releaseTurns(ctx context.Context) error {
	ticker := time.NewTicker(turnsRecheck)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		if groups := r.turns.released(); len(groups) > 0 {
			r.wake(groups, false)
		}
		renewalsSpacedOut.Set(boolGauge(r.turns.strained()))
		statusWritesWaiting.Set(float64(r.turns.waiting()))
	}
}
