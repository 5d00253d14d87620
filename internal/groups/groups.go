// Package groups maps a LeaderGroup to its election: the Lease, the timings, the
// release rule and the epoch floor. The controller and the elector command both
// read a group through it, so they cannot disagree about what a group means.
package groups

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/election"
	"github.com/election-manager/election-manager/internal/timing"
)

// Lease is the group's lock, with the defaults applied: the group's own name and
// namespace.
func Lease(g *v1alpha1.LeaderGroup) types.NamespacedName {
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

// Timings are the group's durations.
func Timings(g *v1alpha1.LeaderGroup) timing.Timings {
	return timing.Timings{LeaseDuration: g.Spec.LeaseDuration.Duration,
		RenewDeadline: g.Spec.RenewDeadline.Duration, RetryPeriod: g.Spec.RetryPeriod.Duration}
}

// ValidateTimings applies the timing rules to a group: admission applies them too,
// but an object admitted before a rule existed must not make an unsafe elector.
func ValidateTimings(g *v1alpha1.LeaderGroup) error {
	if err := Timings(g).Validate(timing.SpecNames); err != nil {
		return fmt.Errorf("LeaderGroup %s/%s: %w", g.Namespace, g.Name, err)
	}
	return nil
}

// ReleaseOnCancel is the group's release rule: a stopping elector releases unless
// the group says not to.
func ReleaseOnCancel(g *v1alpha1.LeaderGroup) bool {
	return g.Spec.ReleaseOnCancel == nil || *g.Spec.ReleaseOnCancel
}

// PreferNewestRevision tells whether a Pods group moves leadership to its workload's
// newest revision (spec.candidates.preferNewestRevision, default true).
func PreferNewestRevision(g *v1alpha1.LeaderGroup) bool {
	return g.Spec.Candidates.PreferNewestRevision == nil || *g.Spec.Candidates.PreferNewestRevision
}

// EpochFloor is the highest epoch the group's status records: the Lease's epochs
// must start above it if the Lease is ever created again.
func EpochFloor(g *v1alpha1.LeaderGroup) int32 {
	floor := g.Status.Transitions
	for _, h := range g.Status.History {
		floor = max(floor, h.Transition)
	}
	return floor
}

// LabelGroup names the LeaderGroup whose electors wrote a Lease: the status writer
// finds a kept Lease's group by it (or by its owner reference) to let it go.
const LabelGroup = "coordination.electionmanager.dev/group"

// Labels are what every write of the group's electors sets on its Lease:
// LabelGroup, or nothing when the name cannot be a label's value (longer than 63
// characters) — the API server would refuse every write of the Lease.
func Labels(g *v1alpha1.LeaderGroup) map[string]string {
	if len(validation.IsValidLabelValue(g.Name)) > 0 {
		return nil
	}
	return map[string]string{LabelGroup: g.Name}
}

// KeepsEpoch tells whether the group's electors put leaserecord.Finalizer on its
// Lease, so that a deleted Lease waits until the status writer has recorded its
// epoch: only the status writer lets it go, and only a served group's (its Lease
// observed). Manager and Pods groups' electors are the managers, which run only
// for a served group. An External group's run anywhere, so they keep the epoch
// only when the status shows the group served on this Lease and it is not being
// suspended, and when the status writer can find the Lease's group again: by the
// group label (no owner reference), in the group's own namespace (the managers
// may only read Leases in others).
func KeepsEpoch(g *v1alpha1.LeaderGroup) bool {
	if g.Spec.Candidates.Source != v1alpha1.SourceExternal {
		return true
	}
	lease := Lease(g)
	return lease.Namespace == g.Namespace && Labels(g) != nil && !g.Spec.Suspend &&
		g.Status.Lease == lease.String() && meta.IsStatusConditionTrue(g.Status.Conditions, v1alpha1.ConditionReady)
}

// Election is identity's elector config in the group's election (without
// callbacks' concerns: owner, handover and epoch floor are the caller's).
func Election(g *v1alpha1.LeaderGroup, identity string) election.Config {
	t := Timings(g)
	cfg := election.Config{
		Lease:           Lease(g),
		Identity:        identity,
		LeaseDuration:   t.LeaseDuration,
		RenewDeadline:   t.RenewDeadline,
		RetryPeriod:     t.RetryPeriod,
		ReleaseOnCancel: ReleaseOnCancel(g),
	}
	if KeepsEpoch(g) {
		// The label is how the status writer finds a kept Lease's group.
		cfg.KeepEpoch, cfg.Labels = true, Labels(g)
	}
	return cfg
}
