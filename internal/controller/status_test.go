package controller

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/leaserecord"
)

func TestPreferredHolderCondition(t *testing.T) {
	live := []v1alpha1.CandidateStatus{{Identity: "a", Ready: true}, {Identity: "b", Ready: true}, {Identity: "down", Ready: false}}
	cases := []struct {
		preferred, holder string
		want              string // "": no condition; else status/reason
	}{
		{"", "a", ""},
		{"a", "a", "True/Honoured"},
		{"b", "a", "False/HandingOver"},
		{"down", "a", "False/NotACandidate"},
		{"nobody", "a", "False/NotACandidate"},
	}
	for _, tc := range cases {
		g := &v1alpha1.LeaderGroup{ObjectMeta: metav1.ObjectMeta{Name: "g", Generation: 2}}
		g.Spec.HistoryLimit, g.Spec.PreferredHolder = 10, tc.preferred
		status, _ := computeStatus(statusInput{group: g, lease: types.NamespacedName{Name: "g"}, candidates: live, now: t0,
			obs: &observation{lease: lease(tc.holder, 1, 0, how(leaserecord.Elected)), now: t0}})
		c := meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionPreferredHolder)
		got := ""
		if c != nil {
			got = string(c.Status) + "/" + c.Reason
		}
		if got != tc.want {
			t.Errorf("preferred %q, holder %q: condition %q, want %q", tc.preferred, tc.holder, got, tc.want)
		}
	}
}

// A Lease re-created below the recorded epoch (an External group's client-go
// elector after a deletion) is not shown as a new term, and status does not claim
// that nobody leads: LeaderElected is Unknown, and says why.
func TestStatusSaysUnknownWhenTheEpochWentBack(t *testing.T) {
	g := &v1alpha1.LeaderGroup{ObjectMeta: metav1.ObjectMeta{Name: "g", Generation: 1}}
	g.Spec.HistoryLimit = 10
	g.Status.History = []v1alpha1.HistoryEntry{ended(open("a", 5, 0, v1alpha1.StartAfterExpiry), 10, v1alpha1.EndUnknown)}
	g.Status.Transitions = 5
	status, _ := computeStatus(statusInput{group: g, lease: types.NamespacedName{Name: "g"}, now: at(21),
		obs: &observation{lease: lease("c", 0, 20), now: at(21)}})
	c := meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionLeaderElected)
	if c == nil || c.Status != metav1.ConditionUnknown || c.Reason != v1alpha1.ReasonEpochWentBack {
		t.Errorf("LeaderElected %+v, want Unknown/EpochWentBack", c)
	}
	if status.Transitions != 5 || len(status.History) != 1 {
		t.Errorf("transitions %d, history %s: want both unchanged", status.Transitions, describe(status.History))
	}
}

// A blocked group's Lease is not observed: the HOLDER column must not go on showing
// the last holder as if it still led.
func TestBlockedGroupShowsNoHolder(t *testing.T) {
	g := &v1alpha1.LeaderGroup{ObjectMeta: metav1.ObjectMeta{Name: "g", Generation: 2}}
	g.Spec.HistoryLimit = 10
	g.Status.Holder, g.Status.History = "a", []v1alpha1.HistoryEntry{open("a", 1, 0, v1alpha1.StartElected)}
	status, _ := computeStatus(statusInput{group: g, lease: types.NamespacedName{Name: "g"}, now: at(5),
		blocked: blocked{reason: v1alpha1.ReasonConflict, message: "older group"}})
	c := meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionLeaderElected)
	if status.Holder != "" || c == nil || c.Status != metav1.ConditionUnknown {
		t.Errorf("blocked group: holder %q, LeaderElected %+v; want no holder and Unknown", status.Holder, c)
	}
}

// A Lease being deleted shows its final record: a term nobody recorded yet goes
// into history (its epoch is what lets the Lease go) and ends there, as for a Lease
// gone; nobody holds it.
func TestStatusRecordsTheTermOfALeaseBeingDeleted(t *testing.T) {
	g := &v1alpha1.LeaderGroup{ObjectMeta: metav1.ObjectMeta{Name: "g", Generation: 1}}
	g.Spec.HistoryLimit = 10
	g.Status.History = []v1alpha1.HistoryEntry{open("a", 1, 0, v1alpha1.StartElected)}
	g.Status.Holder, g.Status.Transitions = "a", 1
	deleting := lease("b", 2, 10, how(leaserecord.AfterExpiry))
	deleting.DeletionTimestamp = &metav1.Time{Time: at(11)}
	status, _ := computeStatus(statusInput{group: g, lease: types.NamespacedName{Name: "g"}, now: at(12),
		obs: &observation{lease: deleting, now: at(12)}})
	want := []v1alpha1.HistoryEntry{
		ended(open("b", 2, 10, v1alpha1.StartAfterExpiry), 12, v1alpha1.EndUnknown),
		ended(open("a", 1, 0, v1alpha1.StartElected), 10, v1alpha1.EndExpired),
	}
	if !equalHistory(status.History, want) || status.Transitions != 2 || status.Holder != "" {
		t.Errorf("history %s, transitions %d, holder %q; want %s, 2 and none", describe(status.History), status.Transitions, status.Holder, describe(want))
	}
}
