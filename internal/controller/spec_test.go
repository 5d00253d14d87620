package controller

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/election-manager/election-manager/api/v1alpha1"
)

// The manager's own lock and its presence Leases decide who writes status and who
// competes: a group electing on one of them would hand it to a pod or an elector.
func TestBlockedByRefusesTheManagersOwnLeases(t *testing.T) {
	lock := types.NamespacedName{Namespace: "system", Name: "election-manager"}
	cases := []struct {
		name      string
		source    v1alpha1.CandidateSource
		lease     types.NamespacedName
		reserved  bool
		wantInMsg string
	}{
		{"the lock, Pods", v1alpha1.SourcePods, lock, true, "system/election-manager"},
		{"the lock, Manager", v1alpha1.SourceManager, lock, true, "--lock-name"},
		{"a presence Lease, Pods", v1alpha1.SourcePods, types.NamespacedName{Namespace: "system", Name: "election-manager-host-x2k4p"}, true, "presence"},
		{"a presence Lease, Manager", v1alpha1.SourceManager, types.NamespacedName{Namespace: "system", Name: "election-manager-a"}, true, "presence"},
		{"a presence Lease, External", v1alpha1.SourceExternal, types.NamespacedName{Namespace: "system", Name: "election-manager-a"}, true, "presence"},
		{"the lock's name in another namespace", v1alpha1.SourcePods, types.NamespacedName{Namespace: "apps", Name: "election-manager"}, false, ""},
		{"a name that only starts like the lock's", v1alpha1.SourcePods, types.NamespacedName{Namespace: "system", Name: "election-managers"}, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := &v1alpha1.LeaderGroup{ObjectMeta: metav1.ObjectMeta{Namespace: tc.lease.Namespace, Name: "g"}}
			g.Spec.Candidates.Source = tc.source
			g.Spec.LeaseDuration, g.Spec.RenewDeadline, g.Spec.RetryPeriod = metav1.Duration{Duration: 15e9}, metav1.Duration{Duration: 10e9}, metav1.Duration{Duration: 2e9}
			got := blockedBy(g, tc.lease, installation{lock: lock, podsEnabled: true}, nil)
			if !tc.reserved {
				if got.reason != "" {
					t.Fatalf("blocked %s: %s", got.reason, got.message)
				}
				return
			}
			if got.reason != "LeaseReserved" || !strings.Contains(got.message, tc.wantInMsg) {
				t.Fatalf("blocked %q (%s), want LeaseReserved naming %q", got.reason, got.message, tc.wantInMsg)
			}
		})
	}
}

// A group that may not use a Lease in another namespace never runs an elector on
// it, so it does not win the Lease from a group that may, however old it is.
func TestBlockedByIgnoresGroupsRefusedTheLeasesNamespace(t *testing.T) {
	lease := types.NamespacedName{Namespace: "other", Name: "shared"}
	group := func(name string, source v1alpha1.CandidateSource, created int64) v1alpha1.LeaderGroup {
		g := v1alpha1.LeaderGroup{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: name, CreationTimestamp: metav1.Unix(created, 0)}}
		g.Spec.Candidates.Source = source
		g.Spec.Lease = &v1alpha1.LeaseReference{Name: lease.Name, Namespace: lease.Namespace}
		g.Spec.LeaseDuration, g.Spec.RenewDeadline, g.Spec.RetryPeriod = metav1.Duration{Duration: 15e9}, metav1.Duration{Duration: 10e9}, metav1.Duration{Duration: 2e9}
		return g
	}
	manager := group("manager-elsewhere", v1alpha1.SourceManager, 100) // older, but refused
	external := group("external-elsewhere", v1alpha1.SourceExternal, 101)
	inst := installation{lock: types.NamespacedName{Namespace: "system", Name: "election-manager"}, externalNamespaces: []string{"other"}}
	same := []v1alpha1.LeaderGroup{manager, external}
	if got := blockedBy(&external, lease, inst, same); got.reason != "" {
		t.Errorf("the External group is blocked: %s (%s)", got.reason, got.message)
	}
	if got := blockedBy(&manager, lease, inst, same); got.reason != v1alpha1.ReasonLeaseNamespaceNotAllowed {
		t.Errorf("the Manager group: %q, want %s", got.reason, v1alpha1.ReasonLeaseNamespaceNotAllowed)
	}
}
