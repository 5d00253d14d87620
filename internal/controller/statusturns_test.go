package controller

import (
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/election-manager/election-manager/api/v1alpha1"
)

// turnsTest drives statusTurns on a fake clock and records whom it wakes.
type turnsTest struct {
	t        *testing.T
	strained atomic.Bool
	clk      *clocktesting.FakePassiveClock
	s        *statusTurns
	woken    []string
}

func newTurnsTest(t *testing.T, spacing time.Duration) *turnsTest {
	tt := &turnsTest{t: t, clk: clocktesting.NewFakePassiveClock(time.Unix(1000, 0))}
	tt.s = newStatusTurns(tt.strained.Load, tt.clk, func(g types.NamespacedName) { tt.woken = append(tt.woken, g.Name) })
	tt.take("before", false, 0)
	tt.done("before", spacing) // the latest write's latency spaces the turns
	return tt
}

func (tt *turnsTest) take(name string, urgent bool, want time.Duration) {
	tt.t.Helper()
	if got := tt.s.take(types.NamespacedName{Name: name}, urgent); got != want {
		tt.t.Fatalf("%s: wait %s, want %s", name, got, want)
	}
}

func (tt *turnsTest) done(name string, latency time.Duration) {
	tt.s.done(types.NamespacedName{Name: name}, latency, false)
}

// wakes checks that the last write's end woke name (none: "").
func (tt *turnsTest) wakes(name string) {
	tt.t.Helper()
	got := ""
	if n := len(tt.woken); n > 0 {
		got = tt.woken[n-1]
	}
	if got != name {
		tt.t.Fatalf("woke %q, want %q", got, name)
	}
	tt.woken = nil
}

func (tt *turnsTest) after(d time.Duration) { tt.clk.SetTime(tt.clk.Now().Add(d)) }

func TestStatusWritesTakeTurnsOnlyWhileTheServerIsStrained(t *testing.T) {
	tt := newTurnsTest(t, 250*time.Millisecond)
	// Not strained: writes go at once, side by side.
	tt.take("a", false, 0)
	tt.take("b", false, 0)
	tt.done("a", 200*time.Millisecond)
	tt.done("b", 250*time.Millisecond)

	tt.strained.Store(true)
	tt.take("a", false, 0)
	tt.take("b", false, 250*time.Millisecond)
	tt.take("c", false, 500*time.Millisecond)
	// b's turn comes while a's write is still out: one at a time, so b waits, and
	// keeps its place before c.
	tt.after(250 * time.Millisecond)
	tt.take("b", false, 250*time.Millisecond)
	tt.take("c", false, 500*time.Millisecond)
	// a's write ends: b, next, is woken and writes at once.
	tt.done("a", 300*time.Millisecond)
	tt.wakes("b")
	tt.take("b", false, 0)
	tt.take("c", false, 300*time.Millisecond)
	// A group that wrote waits behind the others for its next change.
	tt.take("a", false, 600*time.Millisecond)
	tt.done("b", 300*time.Millisecond)
	tt.wakes("c")

	if got := tt.s.released(); got != nil {
		t.Fatalf("released %v while strained", got)
	}
	tt.strained.Store(false)
	// The spacing stays within bounds: a write that timed out does not stop status.
	tt.take("d", false, 0)
	tt.done("d", time.Minute)
	if tt.s.spacing != maxStatusSpacing {
		t.Fatalf("spacing %s after a minute-long write, want %s", tt.s.spacing, maxStatusSpacing)
	}
	want := []types.NamespacedName{{Name: "c"}, {Name: "a"}}
	if got := tt.s.released(); !slices.Equal(got, want) {
		t.Fatalf("released %v when the strain ended, want the waiting %v", got, want)
	}
	if got := tt.s.released(); len(got) != 0 {
		t.Fatalf("released %v twice", got)
	}
	tt.take("a", false, 0)
}

// A write in flight when the strain begins holds the next turn back.
func TestTheFirstTurnWaitsForAWriteStartedBeforeTheStrain(t *testing.T) {
	tt := newTurnsTest(t, time.Second)
	tt.take("a", false, 0)
	tt.strained.Store(true)
	tt.take("b", false, time.Second)
	tt.done("a", time.Second)
	tt.wakes("b")
	tt.take("b", false, 0)
}

// Turns handed out while strained do not carry over into the next strain: a group
// then waits behind the groups waiting then, not behind those of an earlier one.
func TestANewStrainStartsWithTheNextTurnNow(t *testing.T) {
	tt := newTurnsTest(t, time.Second)
	tt.strained.Store(true)
	for i := range 100 {
		tt.s.take(types.NamespacedName{Name: fmt.Sprint(i)}, i%2 == 0) // the first writes; the others wait up to 99s
	}
	tt.done("0", time.Second)
	tt.strained.Store(false)
	if got := tt.s.released(); len(got) != 99 || got[0].Name != "2" || got[49].Name != "1" {
		t.Fatalf("released %v, want the 99 waiting, holder changes first", got)
	}
	tt.take("between", false, 0)
	tt.done("between", time.Second)
	tt.strained.Store(true)
	tt.take("a", false, 0)
}

// A change of holder does not wait behind changes that keep it: a manager stopping
// changes every group's candidates, and status must show the new holders first.
// Yet after three of them in a row one of the others goes, so none waits for ever.
func TestAHolderChangeGoesFirstButNotForEver(t *testing.T) {
	const turn = 250 * time.Millisecond
	tt := newTurnsTest(t, turn)
	tt.strained.Store(true)
	tt.take("a", false, 0)
	for i, name := range []string{"b", "c", "d", "e"} {
		tt.take(name, false, time.Duration(i+1)*turn)
	}
	// The first turn after a's write, not the fifth.
	tt.take("new-holder", true, turn)
	// e waited for a candidate list, and its holder changed: it moves up, behind
	// the holder change that came first.
	tt.take("e", true, 2*turn)
	// The others go back by one for each; none shares a turn.
	tt.take("b", false, 3*turn)
	tt.take("c", false, 4*turn)
	// Two more holder changes: the third in a row goes, then b, then the fourth.
	tt.take("u3", true, 3*turn)
	tt.take("u4", true, 5*turn)
	tt.take("b", false, 4*turn)
	tt.take("d", false, 7*turn)

	// Their turns come in that order, each woken when the last write ends.
	order := []string{"new-holder", "e", "u3", "b", "u4", "c", "d"}
	isUrgent := func(name string) bool { return name == "new-holder" || name == "e" || name[0] == 'u' }
	last := "a"
	for i, name := range order {
		tt.done(last, turn)
		tt.wakes(name)
		for _, other := range order[i+1:] {
			if w := tt.s.take(types.NamespacedName{Name: other}, isUrgent(other)); w == 0 {
				t.Fatalf("%s wrote before %s", other, name)
			}
		}
		tt.take(name, isUrgent(name), 0)
		last = name
	}
	tt.done(last, turn)
	tt.wakes("")
}

// A holder change of a group whose turn, among the others, is next does not move
// it back behind the holder changes.
func TestAHolderChangeNeverMovesAGroupBack(t *testing.T) {
	const turn = 100 * time.Millisecond
	tt := newTurnsTest(t, turn)
	tt.strained.Store(true)
	for _, name := range []string{"u1", "u2", "u3", "u4"} {
		tt.take(name, true, 0)
		tt.done(name, turn)
	}
	tt.take("writing", true, 0)
	for i, name := range []string{"v1", "v2", "v3"} {
		tt.take(name, true, time.Duration(i+1)*turn) // four in a row went: x below goes first
	}
	tt.take("x", false, turn)
	tt.take("v1", true, 2*turn)
	tt.take("x", true, turn)
}

// A group late for its turn (its reconcile held up, or nothing left to write) does
// not hold the line up, and keeps its place for when it comes; a write that
// failed keeps its place at the head.
func TestTheLineGoesOnWithoutALateGroupWhichKeepsItsPlace(t *testing.T) {
	const turn = 100 * time.Millisecond
	tt := newTurnsTest(t, turn)
	tt.strained.Store(true)
	tt.take("a", false, 0)
	tt.take("slow", false, turn)
	tt.take("b", false, 2*turn)
	tt.take("c", false, 3*turn)
	tt.done("a", turn)
	tt.wakes("slow")
	tt.after(late + 2*turn)
	tt.take("b", false, 0) // slow is late: b goes
	tt.take("c", false, turn)
	tt.done("b", turn)
	tt.wakes("c")
	tt.take("slow", false, 0) // back, before c
	tt.take("c", false, turn)
	// slow's write fails: it goes again first.
	tt.s.done(types.NamespacedName{Name: "slow"}, turn, true)
	tt.wakes("slow")
	tt.take("c", false, turn)
	tt.take("slow", false, 0)
	// forget takes a group out of the line at once.
	tt.take("d", false, 2*turn)
	tt.s.forget(types.NamespacedName{Name: "c"})
	tt.take("d", false, turn)
}

func TestUrgentChangesAreThoseOfLeadership(t *testing.T) {
	elected := func(status metav1.ConditionStatus, reason string) []metav1.Condition {
		return []metav1.Condition{{Type: v1alpha1.ConditionLeaderElected, Status: status, Reason: reason}}
	}
	base := v1alpha1.LeaderGroupStatus{Holder: "a", Transitions: 3, Conditions: elected(metav1.ConditionTrue, "Elected")}
	for _, c := range []struct {
		name   string
		change func(s *v1alpha1.LeaderGroupStatus)
		want   bool
	}{
		{"another holder", func(s *v1alpha1.LeaderGroupStatus) { s.Holder = "b" }, true},
		{"a new term of the same holder", func(s *v1alpha1.LeaderGroupStatus) { s.Transitions++ }, true},
		{"leadership unknown", func(s *v1alpha1.LeaderGroupStatus) { s.Conditions = elected(metav1.ConditionUnknown, "EpochWentBack") }, true},
		{"no condition yet", func(s *v1alpha1.LeaderGroupStatus) { s.Conditions = nil }, true},
		{"candidates", func(s *v1alpha1.LeaderGroupStatus) { s.Candidates = []v1alpha1.CandidateStatus{{Identity: "c"}} }, false},
		{"another condition", func(s *v1alpha1.LeaderGroupStatus) {
			s.Conditions = append(elected(metav1.ConditionTrue, "Elected"), metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse})
		}, false},
	} {
		next := *base.DeepCopy()
		c.change(&next)
		if got := urgent(&base, &next); got != c.want {
			t.Errorf("%s: urgent = %v, want %v", c.name, got, c.want)
		}
	}
}
