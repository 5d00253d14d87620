package controller

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestStatusWritesTakeTurnsOnlyWhileTheServerIsStrained(t *testing.T) {
	var strained atomic.Bool
	clk := clocktesting.NewFakePassiveClock(time.Unix(1000, 0))
	s := newStatusTurns(strained.Load, clk)
	a, b, c := types.NamespacedName{Name: "a"}, types.NamespacedName{Name: "b"}, types.NamespacedName{Name: "c"}
	take := func(g types.NamespacedName, want time.Duration) {
		t.Helper()
		if got := s.take(g); got != want {
			t.Fatalf("%s: wait %s, want %s", g.Name, got, want)
		}
	}

	// Not strained: writes go at once, side by side.
	take(a, 0)
	take(b, 0)
	s.done(200 * time.Millisecond)
	s.done(250 * time.Millisecond) // the latest write's latency spaces the turns

	strained.Store(true)
	take(a, 0)
	take(b, 250*time.Millisecond)
	take(c, 500*time.Millisecond)
	// b's turn comes while a's write is still out: one at a time, so b takes the
	// next free turn, after c's, and is not asked again before it.
	clk.SetTime(clk.Now().Add(250 * time.Millisecond))
	take(b, 500*time.Millisecond)
	s.done(300 * time.Millisecond)
	clk.SetTime(clk.Now().Add(250 * time.Millisecond))
	take(c, 0)
	s.done(300 * time.Millisecond)
	// Taken turns are gone: a's next change waits behind b.
	take(a, 500*time.Millisecond)
	clk.SetTime(clk.Now().Add(250 * time.Millisecond))
	take(b, 0)
	s.done(300 * time.Millisecond)

	if got := s.released(); got != nil {
		t.Fatalf("released %v while strained", got)
	}
	strained.Store(false)
	// The spacing stays within bounds: a write that timed out does not stop status.
	take(c, 0)
	s.done(time.Minute)
	if s.spacing != maxStatusSpacing {
		t.Fatalf("spacing %s after a minute-long write, want %s", s.spacing, maxStatusSpacing)
	}
	if got := s.released(); !slices.Equal(got, []types.NamespacedName{a}) {
		t.Fatalf("released %v when the strain ended, want the waiting a", got)
	}
	if got := s.released(); len(got) != 0 {
		t.Fatalf("released %v twice", got)
	}
	take(a, 0)
}

// A write in flight when the strain begins holds the next turn back.
func TestTheFirstTurnWaitsForAWriteStartedBeforeTheStrain(t *testing.T) {
	var strained atomic.Bool
	clk := clocktesting.NewFakePassiveClock(time.Unix(1000, 0))
	s := newStatusTurns(strained.Load, clk)
	a, b := types.NamespacedName{Name: "a"}, types.NamespacedName{Name: "b"}
	if w := s.take(a); w != 0 {
		t.Fatalf("not strained: wait %s", w)
	}
	strained.Store(true)
	if w := s.take(b); w == 0 {
		t.Fatal("b wrote while a's write was still out")
	}
	s.done(time.Second)
	clk.SetTime(clk.Now().Add(time.Second))
	if w := s.take(b); w != 0 {
		t.Fatalf("b at its turn, a's write done: wait %s, want none", w)
	}
}

// Turns handed out while strained do not carry over into the next strain: a group
// then waits behind the groups waiting then, not behind those of an earlier one.
func TestANewStrainStartsWithTheNextTurnNow(t *testing.T) {
	var strained atomic.Bool
	clk := clocktesting.NewFakePassiveClock(time.Unix(1000, 0))
	s := newStatusTurns(strained.Load, clk)
	s.take(types.NamespacedName{Name: "first"})
	s.done(time.Second)
	strained.Store(true)
	for i := range 100 {
		s.take(types.NamespacedName{Name: fmt.Sprint(i)}) // the first writes; the others' turns are up to 99s away
	}
	s.done(time.Second)
	strained.Store(false)
	s.released()
	s.take(types.NamespacedName{Name: "between"})
	s.done(time.Second)
	strained.Store(true)
	if w := s.take(types.NamespacedName{Name: "a"}); w != 0 {
		t.Fatalf("the first group of a new strain waits %s, want none", w)
	}
}
