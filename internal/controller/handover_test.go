package controller

import (
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/leaserecord"
)

// TestHandoverAttempts: an attempt to hand over to the preferred holder is named by
// the spec's generation and the preferred holder's return, so that one that lapsed
// is not made again (every term, every instance computes the same name) until one
// of the two changes.
func TestHandoverAttempts(t *testing.T) {
	group := func(generation int64, preferred string) *v1alpha1.LeaderGroup {
		g := &v1alpha1.LeaderGroup{ObjectMeta: metav1.ObjectMeta{Name: "g", Generation: generation}}
		g.Spec.PreferredHolder = preferred
		return g
	}
	first := lease("p", 1, 0)
	renewed := first.DeepCopy()
	renewed.Spec.RenewTime = &metav1.MicroTime{Time: at(30)}
	_, base := handover(group(3, "p"), first)
	cases := []struct {
		name     string
		g        *v1alpha1.LeaderGroup
		presence *coordinationv1.Lease
		wantTo   string
		same     bool // the same attempt as base
	}{
		{"live preferred holder", group(3, "p"), first, "p", true},
		{"renewals change nothing", group(3, "p"), renewed, "p", true},
		{"a spec change is a new attempt", group(4, "p"), first, "p", false},
		{"a return is a new attempt", group(3, "p"), lease("p", 2, 60), "p", false},
		{"not live: no handover", group(3, "p"), nil, "", false},
		{"nobody preferred", group(3, ""), first, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			to, attempt := handover(tc.g, tc.presence)
			if to != tc.wantTo || (attempt == base) != tc.same {
				t.Errorf("handover = %q, %q; want %q, same attempt as %q: %t", to, attempt, tc.wantTo, base, tc.same)
			}
			if to == "" && attempt != "" {
				t.Errorf("an attempt %q without a target", attempt)
			}
		})
	}
}

// TestPreferredHolderConditionAfterALapse: the condition says HandoverLapsed exactly
// while the group's Lease records a lapse of the current attempt, whoever holds it.
func TestPreferredHolderConditionAfterALapse(t *testing.T) {
	live := []v1alpha1.CandidateStatus{{Identity: "a", Ready: true}, {Identity: "p", Ready: true}}
	lapsed := func(attempt string) []string {
		return []string{leaserecord.AnnotationHandoverLapsed + "=p", leaserecord.AnnotationHandoverAttempt + "=" + attempt}
	}
	cases := []struct {
		name    string
		holder  string
		record  []string
		attempt string
		want    string
	}{
		{"lapsed under this attempt", "a", lapsed("gen-2"), "gen-2", v1alpha1.ReasonHandoverLapsed},
		{"lapsed under an older attempt", "a", lapsed("gen-1"), "gen-2", v1alpha1.ReasonHandingOver},
		{"nothing lapsed", "a", nil, "gen-2", v1alpha1.ReasonHandingOver},
		{"the preferred holder leads", "p", lapsed("gen-2"), "gen-2", v1alpha1.ReasonHonoured},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := &v1alpha1.LeaderGroup{ObjectMeta: metav1.ObjectMeta{Name: "g", Generation: 2}}
			g.Spec.HistoryLimit, g.Spec.PreferredHolder = 10, "p"
			status, _ := computeStatus(statusInput{group: g, candidates: live, now: t0, handoverAttempt: tc.attempt,
				obs: &observation{lease: lease(tc.holder, 3, 0, append(tc.record, how(leaserecord.AfterRelease))...), now: t0}})
			if c := meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionPreferredHolder); c == nil || c.Reason != tc.want {
				t.Errorf("PreferredHolder %+v, want reason %s", c, tc.want)
			}
		})
	}
}
