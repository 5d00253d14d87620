package controller

import (
	"testing"

	"github.com/election-manager/election-manager/api/v1alpha1"
)

func TestPlanFor(t *testing.T) {
	served := blocked{}
	suspended := blocked{reason: v1alpha1.ReasonSuspended}
	conflict := blocked{reason: v1alpha1.ReasonConflict}
	tests := []struct {
		source  v1alpha1.CandidateSource
		blocked blocked
		want    plan
	}{
		{v1alpha1.SourceManager, served, plan{runElector: true, observe: true}},
		{v1alpha1.SourceManager, suspended, plan{observe: true}},
		{v1alpha1.SourceManager, conflict, plan{}},
		{v1alpha1.SourcePods, served, plan{holdPods: true, observe: true}},
		{v1alpha1.SourcePods, suspended, plan{holdPods: true, observe: true}},
		{v1alpha1.SourcePods, blocked{reason: v1alpha1.ReasonSourceNotSupported}, plan{}},
		{v1alpha1.SourceExternal, served, plan{observe: true}},
		{v1alpha1.SourceExternal, suspended, plan{}},
		{v1alpha1.SourceExternal, blocked{reason: v1alpha1.ReasonLeaseNamespaceNotAllowed}, plan{}},
	}
	for _, tt := range tests {
		g := &v1alpha1.LeaderGroup{Spec: v1alpha1.LeaderGroupSpec{Candidates: v1alpha1.Candidates{Source: tt.source}}}
		got := planFor(g, tt.blocked)
		tt.want.blocked = tt.blocked
		if got != tt.want {
			t.Errorf("%s, blocked %q: plan %+v, want %+v", tt.source, tt.blocked.reason, got, tt.want)
		}
	}
}
