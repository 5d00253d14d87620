package controller

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/election"
	"github.com/election-manager/election-manager/internal/groups"
)

// installation is what an installation allows, the same for every group it serves.
type installation struct {
	// lock is the manager's own lock; its presence Leases are named after it.
	lock types.NamespacedName
	// externalNamespaces are the other namespaces External groups may use.
	externalNamespaces []string
	podsEnabled        bool
}

// blockedBy says why g cannot be served as declared, given what the installation
// allows and the other groups that name the same Lease. It is computed the same way
// by every instance that sees the same groups.
func blockedBy(g *v1alpha1.LeaderGroup, lease types.NamespacedName, inst installation, sameLease []v1alpha1.LeaderGroup) blocked {
	source := g.Spec.Candidates.Source
	if why := namespaceRefused(g, lease, inst); why != "" {
		return blocked{v1alpha1.ReasonLeaseNamespaceNotAllowed, why}
	}
	if why := reservedFor(lease, inst.lock); why != "" {
		return blocked{v1alpha1.ReasonLeaseReserved, fmt.Sprintf(
			"Lease %s is reserved: it is %s; name another Lease in spec.lease", lease, why)}
	}
	if winner := conflictWinner(sameLease, lease, inst); winner != nil && (winner.Namespace != g.Namespace || winner.Name != g.Name) {
		return blocked{v1alpha1.ReasonConflict, fmt.Sprintf(
			"Lease %s is already used by LeaderGroup %s/%s, which is older", lease, winner.Namespace, winner.Name)}
	}
	if err := groups.ValidateTimings(g); err != nil {
		return blocked{v1alpha1.ReasonInvalidSpec, err.Error()}
	}
	if msgs := validation.IsValidLabelValue(g.Name); source == v1alpha1.SourcePods && len(msgs) > 0 {
		return blocked{v1alpha1.ReasonInvalidSpec, fmt.Sprintf(
			"metadata.name %q: a Pods group's name is its leader label's value: %s", g.Name, strings.Join(msgs, "; "))}
	}
	if source == v1alpha1.SourcePods && !inst.podsEnabled {
		return blocked{v1alpha1.ReasonSourceNotSupported, "candidates.source Pods: this manager runs without --pods-source (the chart's podsSource.enabled)"}
	}
	if g.Spec.Suspend {
		return blocked{v1alpha1.ReasonSuspended, "spec.suspend is true: no elector runs"}
	}
	return blocked{}
}

// namespaceRefused says why g may not use a Lease in lease's namespace, "" when it may:
// only External groups may name another namespace, and only one this installation
// observes.
func namespaceRefused(g *v1alpha1.LeaderGroup, lease types.NamespacedName, inst installation) string {
	switch {
	case lease.Namespace == g.Namespace:
		return ""
	case g.Spec.Candidates.Source != v1alpha1.SourceExternal:
		return fmt.Sprintf("spec.lease.namespace %q: only External groups may use a Lease in another namespace", lease.Namespace)
	case lease.Namespace == election.NodeLeaseNamespace || !slices.Contains(inst.externalNamespaces, lease.Namespace):
		return fmt.Sprintf("spec.lease.namespace %q is not among the namespaces this installation may observe (%s)",
			lease.Namespace, orNone(inst.externalNamespaces))
	}
	return ""
}

// reservedFor says what of the manager's own a Lease is, "" when nothing: its lock
// decides which instance writes status and its presence Leases (lock-<id>) who
// competes, so no group may elect on them, whatever its source.
func reservedFor(lease, lock types.NamespacedName) string {
	switch {
	case lease.Namespace != lock.Namespace:
		return ""
	case lease.Name == lock.Name:
		return "the manager's own lock (--lock-name)"
	case strings.HasPrefix(lease.Name, lock.Name+"-"):
		return fmt.Sprintf("named like a manager instance's presence Lease (%s-<id>)", lock.Name)
	}
	return ""
}

// conflictWinner is the group that may use a Lease several groups name: the oldest,
// ties broken by namespace/name, of those not being deleted and not refused the
// Lease's namespace (they never run an elector on it).
func conflictWinner(groups []v1alpha1.LeaderGroup, lease types.NamespacedName, inst installation) *v1alpha1.LeaderGroup {
	var winner *v1alpha1.LeaderGroup
	for i := range groups {
		g := &groups[i]
		if !g.DeletionTimestamp.IsZero() || namespaceRefused(g, lease, inst) != "" {
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

func orNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}

// electorConfig is the config of this instance's elector in a Manager group; it
// reads the epoch floor through floor.
func electorConfig(g *v1alpha1.LeaderGroup, identity string, floor func(fresh bool) (int32, error)) election.Config {
	cfg := groups.Election(g, identity)
	cfg.OwnerReferences = []metav1.OwnerReference{ownerReference(g)}
	cfg.EpochFloor = floor
	return cfg
}

// ownerReference makes a Lease the manager creates go with its group. No
// blockOwnerDeletion: it would need update on leadergroups/finalizers.
func ownerReference(g *v1alpha1.LeaderGroup) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion: v1alpha1.GroupVersion.String(), Kind: "LeaderGroup",
		Name: g.Name, UID: g.UID, Controller: ptr.To(true),
	}
}
