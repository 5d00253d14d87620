package controller

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/election"
)

// resolveLease is the group's lock, with the defaults applied: the group's own name
// and namespace.
func resolveLease(g *v1alpha1.LeaderGroup) types.NamespacedName {
	key := types.NamespacedName{Namespace: g.Namespace, Name: g.Name}
	if l := g.Spec.Lease; l != nil {
		if l.Name != "" {
			key.Name = l.Name
		}
		if l.Namespace != "" {
			key.Namespace = l.Namespace
		}
	}
	return key
}

// blockedBy says why g cannot be served as declared, given the namespaces External
// groups may use and the other groups that name the same Lease. It is computed the
// same way by every instance that sees the same groups.
func blockedBy(g *v1alpha1.LeaderGroup, lease types.NamespacedName, externalNamespaces []string, podsEnabled bool, sameLease []v1alpha1.LeaderGroup) blocked {
	source := g.Spec.Candidates.Source
	if lease.Namespace != g.Namespace {
		switch {
		case source != v1alpha1.SourceExternal:
			return blocked{v1alpha1.ReasonLeaseNamespaceNotAllowed, fmt.Sprintf(
				"spec.lease.namespace %q: only External groups may use a Lease in another namespace", lease.Namespace)}
		case lease.Namespace == election.NodeLeaseNamespace || !slices.Contains(externalNamespaces, lease.Namespace):
			return blocked{v1alpha1.ReasonLeaseNamespaceNotAllowed, fmt.Sprintf(
				"spec.lease.namespace %q is not among the namespaces this installation may observe (%s)",
				lease.Namespace, orNone(externalNamespaces))}
		}
	}
	if winner := conflictWinner(sameLease); winner != nil && (winner.Namespace != g.Namespace || winner.Name != g.Name) {
		return blocked{v1alpha1.ReasonConflict, fmt.Sprintf(
			"Lease %s is already used by LeaderGroup %s/%s, which is older", lease, winner.Namespace, winner.Name)}
	}
	if err := timingsValid(g); err != nil {
		return blocked{v1alpha1.ReasonInvalidSpec, err.Error()}
	}
	if source == v1alpha1.SourcePods && !podsEnabled {
		return blocked{v1alpha1.ReasonSourceNotSupported, "candidates.source Pods: this manager runs without --pods-source (the chart's podsSource.enabled)"}
	}
	if g.Spec.Suspend {
		return blocked{v1alpha1.ReasonSuspended, "spec.suspend is true: no elector runs"}
	}
	return blocked{}
}

// conflictWinner is the group that may use a Lease several groups name: the oldest,
// ties broken by namespace/name.
func conflictWinner(groups []v1alpha1.LeaderGroup) *v1alpha1.LeaderGroup {
	var winner *v1alpha1.LeaderGroup
	for i := range groups {
		g := &groups[i]
		if !g.DeletionTimestamp.IsZero() {
			continue
		}
		if winner == nil || older(g, winner) {
			winner = g
		}
	}
	return winner
}

func older(a, b *v1alpha1.LeaderGroup) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
}

// timingsValid repeats the admission rules, for objects admitted before a rule
// existed: an elector must never run with timings that are not safe.
func timingsValid(g *v1alpha1.LeaderGroup) error {
	cfg := election.Config{
		Lease:         resolveLease(g),
		Identity:      "check",
		LeaseDuration: g.Spec.LeaseDuration.Duration,
		RenewDeadline: g.Spec.RenewDeadline.Duration,
		RetryPeriod:   g.Spec.RetryPeriod.Duration,
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("spec timings: %w", err)
	}
	return nil
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}

// electorConfig is the config of this instance's elector in a Manager group; it hands
// leadership over to handOverTo when set.
func electorConfig(g *v1alpha1.LeaderGroup, lease types.NamespacedName, identity, handOverTo string) election.Config {
	return election.Config{
		HandOverTo:      handOverTo,
		Lease:           lease,
		Identity:        identity,
		LeaseDuration:   g.Spec.LeaseDuration.Duration,
		RenewDeadline:   g.Spec.RenewDeadline.Duration,
		RetryPeriod:     g.Spec.RetryPeriod.Duration,
		ReleaseOnCancel: g.Spec.ReleaseOnCancel == nil || *g.Spec.ReleaseOnCancel,
		Labels:          map[string]string{LabelGroup: g.Name},
		OwnerReferences: []metav1.OwnerReference{ownerReference(g)},
	}
}

// ownerReference makes a Lease the manager creates go with its group. No
// blockOwnerDeletion: it would need update on leadergroups/finalizers.
func ownerReference(g *v1alpha1.LeaderGroup) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion: v1alpha1.GroupVersion.String(), Kind: "LeaderGroup",
		Name: g.Name, UID: g.UID, Controller: ptr.To(true),
	}
}

// LabelGroup names the LeaderGroup whose electors wrote a Lease.
const LabelGroup = "coordination.electionmanager.dev/group"
