package controller

import "github.com/election-manager/election-manager/api/v1alpha1"

// plan is what this instance does for a group, decided once per reconcile by a pure
// function: every step of Reconcile reads it instead of deriving it again.
type plan struct {
	// blocked says why the group is not served as declared (Ready=False); zero when
	// it is served.
	blocked blocked
	// runElector: this instance is a candidate (source Manager, served).
	runElector bool
	// holdPods: the status writer holds the Lease on a pod's behalf (source Pods,
	// served, or suspended: then it releases the Lease and removes the label).
	holdPods bool
	// observe: status is derived from the Lease. A suspended Manager or Pods group is
	// still observed, so that its release is recorded; a blocked group is not, nor a
	// suspended External one (nobody here releases for it).
	observe bool
}

// planFor decides the plan from the group and why it is blocked (blockedBy).
func planFor(g *v1alpha1.LeaderGroup, b blocked) plan {
	source := g.Spec.Candidates.Source
	served, suspended := b.reason == "", b.reason == v1alpha1.ReasonSuspended
	return plan{
		blocked:    b,
		runElector: source == v1alpha1.SourceManager && served,
		holdPods:   source == v1alpha1.SourcePods && (served || suspended),
		observe:    served || (suspended && source != v1alpha1.SourceExternal),
	}
}

// suspended tells whether the plan is to hold a suspended group's Lease released.
func (p plan) suspended() bool { return p.blocked.reason == v1alpha1.ReasonSuspended }
