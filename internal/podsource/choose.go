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

// choose returns who should lead: the preferred pod while it can lead; else, among
// the pods that can lead, those of the workload's newest revision before the others,
// and within them the current holder (a new pod never preempts it), then the
// longest-running; "" when none can. holder is "" when the Lease has no valid holder.
// With moveToNewest, a holder of an older revision gives way as soon as a pod of the
// newest can lead; without, it keeps leading while it can, and only its replacement
// comes from the newest revision.
//
// So a rolling update moves leadership once: to the first Ready pod of the new
// revision (or, without moveToNewest, to one when the old leader goes), whose holder
// then stays while the old pods go.
func choose(pods []corev1.Pod, holder, preferred string, moveToNewest bool) string {
	if preferred != "" && canLeadNamed(pods, preferred) {
		return preferred
	}
	newest := newestRevision(pods)
	tier := func(p *corev1.Pod) int {
		if newest != "" && revision(p) != newest {
			return 1
		}
		return 0
	}
	var best, current *corev1.Pod
	for i := range pods {
		p := &pods[i]
		if !canLead(p) {
			continue
		}
		if p.Name == holder {
			current = p
		}
		if best == nil || tier(p) < tier(best) || (tier(p) == tier(best) && older(p, best)) {
			best = p
		}
	}
	switch {
	case current != nil && (!moveToNewest || tier(current) <= tier(best)):
		return current.Name
	case best != nil:
		return best.Name
	}
	return ""
}

// older orders pods by age, then by name.
func older(a, b *corev1.Pod) bool {
	return a.CreationTimestamp.Before(&b.CreationTimestamp) ||
		(a.CreationTimestamp.Equal(&b.CreationTimestamp) && a.Name < b.Name)
}

// revision is the revision of the workload a pod belongs to, as its owner labels it:
// a Deployment's ReplicaSet with pod-template-hash, a StatefulSet with
// controller-revision-hash; "" for a pod of neither.
func revision(p *corev1.Pod) string {
	for _, o := range p.OwnerReferences {
		if o.Controller == nil || !*o.Controller {
			continue
		}
		switch o.Kind {
		case "ReplicaSet":
			return p.Labels["pod-template-hash"]
		case "StatefulSet":
			return p.Labels["controller-revision-hash"]
		}
	}
	return ""
}

// newestRevision is the revision of the most recently created pod that is not
// terminating: the one its workload now creates pods of (after a rollback too).
func newestRevision(pods []corev1.Pod) string {
	var newest *corev1.Pod
	for i := range pods {
		p := &pods[i]
		if p.DeletionTimestamp == nil && revision(p) != "" && (newest == nil || older(newest, p)) {
			newest = p
		}
	}
	if newest == nil {
		return ""
	}
	return revision(newest)
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
