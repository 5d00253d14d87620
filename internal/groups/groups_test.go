package groups

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/election-manager/election-manager/api/v1alpha1"
)

func TestWhichGroupsKeepTheirEpochAndHowTheirLeaseIsLabelled(t *testing.T) {
	group := func(source v1alpha1.CandidateSource, leaseNamespace string) *v1alpha1.LeaderGroup {
		g := &v1alpha1.LeaderGroup{ObjectMeta: metav1.ObjectMeta{Name: "g", Namespace: "ns"}}
		g.Spec.Candidates.Source = source
		if leaseNamespace != "" {
			g.Spec.Lease = &v1alpha1.LeaseReference{Namespace: leaseNamespace}
		}
		return g
	}
	for _, tc := range []struct {
		g    *v1alpha1.LeaderGroup
		want bool
	}{
		{group("", ""), true},
		{group(v1alpha1.SourceManager, ""), true},
		{group(v1alpha1.SourcePods, ""), true},
		{group(v1alpha1.SourceExternal, ""), true},
		{group(v1alpha1.SourceExternal, "ns"), true},
		// the status writer may only read Leases in an External namespace
		{group(v1alpha1.SourceExternal, "shared"), false},
	} {
		if got := Election(tc.g, "id").KeepEpoch; got != tc.want {
			t.Errorf("source %q, Lease %s: KeepEpoch %v, want %v", tc.g.Spec.Candidates.Source, Lease(tc.g), got, tc.want)
		}
	}

	if l := Election(group("", ""), "id").Labels; len(l) != 1 || l[LabelGroup] != "g" {
		t.Errorf("labels %v: want %s=g", l, LabelGroup)
	}
	long := group("", "")
	long.Name = strings.Repeat("g", 64)
	if l := Labels(long); l != nil {
		t.Errorf("labels %v for a name no label value can hold: the API server would refuse every write", l)
	}
}
