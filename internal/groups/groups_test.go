package groups

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/election-manager/election-manager/api/v1alpha1"
)

func TestWhichGroupsKeepTheirEpochAndHowTheirLeaseIsLabelled(t *testing.T) {
	group := func(source v1alpha1.CandidateSource, leaseNamespace string, status ...func(*v1alpha1.LeaderGroup)) *v1alpha1.LeaderGroup {
		g := &v1alpha1.LeaderGroup{ObjectMeta: metav1.ObjectMeta{Name: "g", Namespace: "ns", Generation: 2}}
		g.Spec.Candidates.Source = source
		if leaseNamespace != "" {
			g.Spec.Lease = &v1alpha1.LeaseReference{Namespace: leaseNamespace}
		}
		for _, s := range status {
			s(g)
		}
		return g
	}
	ready := func(s metav1.ConditionStatus, lease string) func(*v1alpha1.LeaderGroup) {
		return func(g *v1alpha1.LeaderGroup) {
			g.Status.ObservedGeneration, g.Status.Lease = 1, lease
			g.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: s, Reason: "Any"}}
		}
	}
	served := ready(metav1.ConditionTrue, "ns/g")
	long := func(g *v1alpha1.LeaderGroup) { g.Name = strings.Repeat("g", 64); g.Status.Lease = "ns/" + g.Name }
	suspended := func(g *v1alpha1.LeaderGroup) { g.Spec.Suspend = true }
	for _, tc := range []struct {
		what string
		g    *v1alpha1.LeaderGroup
		want bool
	}{
		// the managers are the electors, only while they serve the group
		{"Manager (default)", group("", ""), true},
		{"Manager", group(v1alpha1.SourceManager, ""), true},
		{"Pods", group(v1alpha1.SourcePods, ""), true},
		// served as the status last showed, whatever spec edit it has yet to catch up with
		{"External, served", group(v1alpha1.SourceExternal, "", served), true},
		{"External, its own namespace named, served", group(v1alpha1.SourceExternal, "ns", served), true},
		// nobody may let such a Lease go
		{"External, never served", group(v1alpha1.SourceExternal, ""), false},
		{"External, blocked (suspended, in conflict, …)", group(v1alpha1.SourceExternal, "", ready(metav1.ConditionFalse, "ns/g")), false},
		{"External, being suspended", group(v1alpha1.SourceExternal, "", served, suspended), false},
		{"External, served on another Lease", group(v1alpha1.SourceExternal, "", ready(metav1.ConditionTrue, "ns/other")), false},
		{"External, Lease in another namespace", group(v1alpha1.SourceExternal, "shared", ready(metav1.ConditionTrue, "shared/g")), false},
		// no label, no owner reference: nothing would lead the status writer to it
		{"External, a name no label can hold", group(v1alpha1.SourceExternal, "", served, long), false},
	} {
		cfg := Election(tc.g, "id")
		if cfg.KeepEpoch != tc.want {
			t.Errorf("%s: KeepEpoch %v, want %v", tc.what, cfg.KeepEpoch, tc.want)
		}
		if labelled := cfg.Labels[LabelGroup] == tc.g.Name; labelled != tc.want && len(tc.g.Name) <= 63 {
			t.Errorf("%s: labels %v: want the group label exactly when the Lease is kept", tc.what, cfg.Labels)
		}
	}

	if l := Election(group("", ""), "id").Labels; len(l) != 1 || l[LabelGroup] != "g" {
		t.Errorf("labels %v: want %s=g", l, LabelGroup)
	}
	if l := Labels(group("", "", long)); l != nil {
		t.Errorf("labels %v for a name no label value can hold: the API server would refuse every write", l)
	}
}
