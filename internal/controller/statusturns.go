package controller

import (
	"context"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	"github.com/election-manager/election-manager/api/v1alpha1"
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
// status writes take turns: one at a time, each when the last is done, so they go
// at the server's own pace. The groups waiting stand in one line; each is told
// how long its turn may take to come, and the next in line is woken when a write
// ends. A group that waits gathers all its changes into the write of its turn; its
// history counts the terms it never showed as missed. When the strain ends, the
// groups still waiting are woken and written at once.
//
// A change of the holder shown, its term or whether anyone leads (see urgent)
// goes before the others (candidates, other conditions): a manager stopping
// changes the candidates of every group and the holder of those it led, and
// status must show the new holders first. After urgentRun of them in a row, one of
// the others goes, so that neither kind waits for ever.
type statusTurns struct {
	strained func() bool
	clock    clock.PassiveClock
	// wake reconciles the group whose turn has come.
	wake func(types.NamespacedName)

	mu sync.Mutex
	// The line: holder changes, then the others, each in order of arrival.
	first, rest []types.NamespacedName
	waiting     map[types.NamespacedName]*place
	// run counts the turns in a row that went to the first line.
	run int
	// spacing, the latest write's latency, is how far apart turns are told to be.
	spacing time.Duration
	// writing: the status writes in flight, strained or not, and whether each
	// came from the first line.
	writing map[types.NamespacedName]bool
}

// place is a waiting group's: in which line, and when it was told to come back.
type place struct {
	urgent bool
	due    time.Time
}

// The spacing stays within these: not so short that turns mean nothing, not so long
// that status stops (a write that timed out measures its timeout).
const (
	minStatusSpacing = 10 * time.Millisecond
	maxStatusSpacing = time.Second
	// turnsRecheck is how often waiting groups are checked for the strain's end.
	turnsRecheck = time.Second
	// urgentRun is how many holder changes go in a row while others wait.
	urgentRun = 3
	// late is how long past its due time a group may be before the line goes on
	// without it: its reconcile is held up, or it found nothing to write any more.
	// It keeps its place, and takes the next free turn when it comes.
	late = 2 * maxStatusSpacing
)

func newStatusTurns(strained func() bool, clk clock.PassiveClock, wake func(types.NamespacedName)) *statusTurns {
	return &statusTurns{strained: strained, clock: clk, wake: wake, spacing: 100 * time.Millisecond,
		waiting: map[types.NamespacedName]*place{}, writing: map[types.NamespacedName]bool{}}
}

// urgent tells whether writing next instead of prev changes what status says of
// leadership: the holder, its term, or the LeaderElected condition (Unknown when
// the observer cannot tell).
func urgent(prev, next *v1alpha1.LeaderGroupStatus) bool {
	if prev.Holder != next.Holder || prev.Transitions != next.Transitions {
		return true
	}
	a := meta.FindStatusCondition(prev.Conditions, v1alpha1.ConditionLeaderElected)
	b := meta.FindStatusCondition(next.Conditions, v1alpha1.ConditionLeaderElected)
	if a == nil || b == nil {
		return a != b
	}
	return a.Status != b.Status || a.Reason != b.Reason
}

// take tells how long group must wait before writing its status; 0 means now, and
// then the caller writes and calls done. isUrgent: see urgent.
func (s *statusTurns) take(group types.NamespacedName, isUrgent bool) time.Duration {
	strained := s.strained()
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !strained {
		// Turns handed out in an earlier strain say nothing about the next one.
		s.leave(group)
		s.run = 0
		s.writing[group] = false
		return 0
	}
	p := s.waiting[group]
	if p == nil {
		p = &place{urgent: isUrgent}
		s.waiting[group] = p
		s.join(group, isUrgent)
	} else {
		p.due = time.Time{} // here now, however late: its place counts again
		if isUrgent && !p.urgent {
			s.moveUp(group, now)
		}
	}
	ahead := s.ahead(group, now)
	if ahead == 0 && len(s.writing) == 0 {
		urgent := s.waiting[group].urgent
		s.leave(group)
		if urgent {
			s.run++
		} else {
			s.run = 0
		}
		s.writing[group] = urgent
		return 0
	}
	wait := time.Duration(ahead) * s.spacing
	if len(s.writing) > 0 {
		wait += s.spacing
	}
	s.waiting[group].due = now.Add(wait)
	return wait
}

func (s *statusTurns) join(group types.NamespacedName, isUrgent bool) {
	if isUrgent {
		s.first = append(s.first, group)
	} else {
		s.rest = append(s.rest, group)
	}
}

// moveUp moves a waiting group whose holder changed into the first line, unless
// its place in the other comes sooner.
func (s *statusTurns) moveUp(group types.NamespacedName, now time.Time) {
	before := s.ahead(group, now)
	i := slices.Index(s.rest, group)
	s.rest = slices.Delete(s.rest, i, i+1)
	s.first = append(s.first, group)
	s.waiting[group].urgent = true
	if s.ahead(group, now) > before {
		s.first = s.first[:len(s.first)-1]
		s.rest = slices.Insert(s.rest, i, group)
		s.waiting[group].urgent = false
	}
}

// leave takes group out of the line, if it stands in it.
func (s *statusTurns) leave(group types.NamespacedName) {
	p := s.waiting[group]
	if p == nil {
		return
	}
	delete(s.waiting, group)
	if p.urgent {
		s.first = slices.DeleteFunc(s.first, func(g types.NamespacedName) bool { return g == group })
	} else {
		s.rest = slices.DeleteFunc(s.rest, func(g types.NamespacedName) bool { return g == group })
	}
}

// order calls f with the groups in the order their turns come, but for those late
// for their turn (see late), until f returns false. The first line goes first, but
// after urgentRun turns in a row one of the rest goes.
func (s *statusTurns) order(now time.Time, f func(types.NamespacedName) bool) {
	f0, r, run := 0, 0, s.run
	for f0 < len(s.first) || r < len(s.rest) {
		var g types.NamespacedName
		if f0 < len(s.first) && (run < urgentRun || r == len(s.rest)) {
			g, f0, run = s.first[f0], f0+1, run+1
		} else {
			g, r, run = s.rest[r], r+1, 0
		}
		if p := s.waiting[g]; !p.due.IsZero() && now.After(p.due.Add(late)) {
			continue
		}
		if !f(g) {
			return
		}
	}
}

// ahead counts the groups whose turns come before group's.
func (s *statusTurns) ahead(group types.NamespacedName, now time.Time) int {
	n := 0
	s.order(now, func(g types.NamespacedName) bool {
		if g == group {
			return false
		}
		n++
		return true
	})
	return n
}

// done ends group's status write, which took latency and failed or not. The
// latency spaces the next turns; the next in line is woken. A failed write keeps
// the group's place at the head of its line.
func (s *statusTurns) done(group types.NamespacedName, latency time.Duration, failed bool) {
	strained, now := s.strained(), s.clock.Now()
	s.mu.Lock()
	urgent, ok := s.writing[group]
	delete(s.writing, group)
	s.spacing = min(max(latency, minStatusSpacing), maxStatusSpacing)
	if ok && failed && s.waiting[group] == nil && strained {
		s.waiting[group] = &place{urgent: urgent}
		if urgent {
			s.first = slices.Insert(s.first, 0, group)
		} else {
			s.rest = slices.Insert(s.rest, 0, group)
		}
	}
	var next types.NamespacedName
	if len(s.writing) == 0 {
		s.order(now, func(g types.NamespacedName) bool { next = g; return false })
	}
	s.mu.Unlock()
	if next.Name != "" && s.wake != nil {
		s.wake(next)
	}
}

// forget takes a group out of the line: it was deleted, has nothing to write, or
// this instance no longer writes status.
func (s *statusTurns) forget(group types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leave(group)
}

// released returns and forgets the groups that wait, once the strain is over.
func (s *statusTurns) released() []types.NamespacedName {
	if s.strained() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	groups := append(slices.Clone(s.first), s.rest...)
	s.first, s.rest, s.run = nil, nil, 0
	clear(s.waiting)
	return groups
}

// queued counts the groups that wait.
func (s *statusTurns) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiting)
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
		statusWritesWaiting.Set(float64(r.turns.queued()))
	}
}
