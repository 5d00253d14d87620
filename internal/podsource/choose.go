// Package podsource elects among pods. The manager instance that writes status holds
// a Pods group's Lease on behalf of the chosen pod (holder = pod name), renews it
// while that pod stays Ready, and marks the pod with the leader label, so that a
// Service selecting the label reaches exactly one pod.
package podsource

import (
	"sort"

	corev1 "k8s.io/api/core/v1"

	"github.com/election-manager/election-manager/api/v1alpha1"
)

const (
	// LabelLeader marks the pod that holds its group's Lease; its value is the
	// group's name (a Service selects one group's leader with it).
	LabelLeader = "coordination.electionmanager.dev/leader"
	// AnnotationEpoch on the leader pod is its term's epoch (the Lease's
	// leaseTransitions), for the pod to read through the downward API.
	AnnotationEpoch = "coordination.electionmanager.dev/epoch"
)

// canLead tells whether a pod may hold leadership: Ready and not terminating.
func canLead(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// free tells whether a pod may lead group as far as labels go: a pod carries one
// leader label value, so a pod that leads another group cannot lead this one.
func free(p *corev1.Pod, group string) bool {
	v, ok := p.Labels[LabelLeader]
	return !ok || v == group
}

// Candidates lists group's selected pods and whether each can lead, sorted by name.
func Candidates(pods []corev1.Pod, group string) []v1alpha1.CandidateStatus {
	out := make([]v1alpha1.CandidateStatus, 0, len(pods))
	for i := range pods {
		out = append(out, v1alpha1.CandidateStatus{Identity: pods[i].Name, Ready: canLead(&pods[i]) && free(&pods[i], group)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Identity < out[j].Identity })
	return out
}

// choose returns who should lead: the preferred pod while it can lead, else the
// current holder while it can (a new pod never preempts it), else the longest-running
// pod that can, "" when none can. holder is "" when the Lease has no valid holder.
func choose(pods []corev1.Pod, holder, preferred string) string {
	if preferred != "" && canLeadNamed(pods, preferred) {
		return preferred
	}
	var best *corev1.Pod
	for i := range pods {
		p := &pods[i]
		if !canLead(p) {
			continue
		}
		if p.Name == holder {
			return holder
		}
		if best == nil || p.CreationTimestamp.Before(&best.CreationTimestamp) ||
			(p.CreationTimestamp.Equal(&best.CreationTimestamp) && p.Name < best.Name) {
			best = p
		}
	}
	if best == nil {
		return ""
	}
	return best.Name
}

// canLeadNamed tells whether the pod called name is among pods and can lead.
func canLeadNamed(pods []corev1.Pod, name string) bool {
	for i := range pods {
		if pods[i].Name == name {
			return canLead(&pods[i])
		}
	}
	return false
}
