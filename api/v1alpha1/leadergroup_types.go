package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CandidateSource says who competes for a group's Lease.
// +kubebuilder:validation:Enum=Manager;Pods;External
type CandidateSource string

const (
	// SourceManager makes every running manager instance a candidate.
	SourceManager CandidateSource = "Manager"
	// SourcePods elects among the Ready pods that candidates.podSelector picks.
	SourcePods CandidateSource = "Pods"
	// SourceExternal runs no elector: other processes compete and the manager observes.
	SourceExternal CandidateSource = "External"
)

// LeaderGroupSpec declares a lock and how it is competed for.
// The rules below keep the timings safe: a leader may act until its last renewal +
// renewDeadline + retryPeriod, others may take over at last renewal + leaseDuration.
// +kubebuilder:validation:XValidation:rule="!has(self.leaseDuration) || !has(self.renewDeadline) || !has(self.retryPeriod) || duration(self.leaseDuration) > duration(self.renewDeadline) + duration(self.retryPeriod)",message="leaseDuration must be greater than renewDeadline + retryPeriod",fieldPath=".leaseDuration"
// +kubebuilder:validation:XValidation:rule="!has(self.renewDeadline) || !has(self.retryPeriod) || duration(self.renewDeadline).getMilliseconds() * 10 > duration(self.retryPeriod).getMilliseconds() * 12",message="renewDeadline must be greater than 1.2 × retryPeriod",fieldPath=".renewDeadline"
// +kubebuilder:validation:XValidation:rule="has(self.lease) == has(oldSelf.lease)",message="spec.lease cannot be added or removed after creation",fieldPath=".lease"
// +kubebuilder:validation:XValidation:rule="!has(self.preferredHolder) || self.candidates.source != 'External'",message="preferredHolder is not allowed with source External: the manager cannot make other processes step down",fieldPath=".preferredHolder"
type LeaderGroupSpec struct {
	// lease is the lock: a coordination.k8s.io/v1 Lease. Both of its fields default,
	// at reconcile time, to the LeaderGroup's own name and namespace; status.lease shows
	// the resolved lock. It cannot be added, removed or changed after creation.
	// +optional
	Lease *LeaseReference `json:"lease,omitempty"`

	// leaseDuration is how long candidates wait, from when they last saw the Lease
	// change, before they may take it over. Whole seconds (the Lease stores integer
	// seconds), at least 1s, and more than renewDeadline + retryPeriod.
	// +kubebuilder:default="15s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="leaseDuration must be at least 1s"
	// +kubebuilder:validation:XValidation:rule="duration(self).getMilliseconds() % 1000 == 0",message="leaseDuration must be whole seconds"
	// +optional
	LeaseDuration metav1.Duration `json:"leaseDuration,omitempty"`

	// renewDeadline is how long the leader keeps trying to renew before it stops
	// acting as leader. More than 1.2 × retryPeriod.
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="renewDeadline must be greater than 0"
	// +optional
	RenewDeadline metav1.Duration `json:"renewDeadline,omitempty"`

	// retryPeriod is how often the leader renews and how long electors wait
	// between attempts after an error. A manager renews up to a quarter period
	// early to spread its writes evenly, and less often (up to 3/4 of
	// renewDeadline) while the API server answers slowly.
	// +kubebuilder:default="2s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="retryPeriod must be greater than 0"
	// +optional
	RetryPeriod metav1.Duration `json:"retryPeriod,omitempty"`

	// candidates says who competes for the Lease.
	// +kubebuilder:default={source: Manager}
	// +optional
	Candidates Candidates `json:"candidates,omitempty"`

	// releaseOnCancel makes a stopping elector release the Lease at once, so the
	// next candidate takes over without waiting for leaseDuration.
	// +kubebuilder:default=true
	// +optional
	ReleaseOnCancel *bool `json:"releaseOnCancel,omitempty"`

	// historyLimit is how many entries status.history keeps, newest first.
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	HistoryLimit int32 `json:"historyLimit,omitempty"`

	// suspend stops the group's electors, which release the Lease; the group and its
	// history are kept. Setting it back to false resumes the election.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// preferredHolder moves leadership on purpose: while this identity is a live
	// candidate (source Manager: a running manager instance's --id; source Pods: a
	// Ready pod's name), the holder hands the Lease over to it, and it keeps
	// leadership while live. If it fails, the election goes on as usual; when it
	// comes back, leadership returns to it. The PreferredHolder condition says whether
	// the preference is honoured, and why not. Not allowed with source External.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:MinLength=1
	// +optional
	PreferredHolder string `json:"preferredHolder,omitempty"`
}

// LeaseReference names the Lease a group elects on.
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.lease is immutable"
type LeaseReference struct {
	// name of the Lease. Defaults to the LeaderGroup's name.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +optional
	Name string `json:"name,omitempty"`

	// namespace of the Lease. Defaults to the LeaderGroup's namespace. Another
	// namespace is allowed only for source External, and only in namespaces the
	// manager is allowed to observe.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// Candidates says who competes for a group's Lease.
// +kubebuilder:validation:XValidation:rule="self.source != 'Pods' || has(self.podSelector)",message="podSelector is required when source is Pods",fieldPath=".podSelector"
// +kubebuilder:validation:XValidation:rule="self.source == 'Pods' || !has(self.podSelector)",message="podSelector is only allowed when source is Pods",fieldPath=".podSelector"
// +kubebuilder:validation:XValidation:rule="self.source == 'Pods' || !has(self.preferNewestRevision)",message="preferNewestRevision is only allowed when source is Pods",fieldPath=".preferNewestRevision"
type Candidates struct {
	// source of the candidates. Manager: every running manager instance competes,
	// each under its own --id. Pods: the manager elects among the Ready pods that
	// podSelector picks and holds the Lease on the chosen pod's behalf. External: the
	// manager runs no elector; other processes compete and the manager only observes.
	// It cannot be changed after creation: delete and re-create the group instead.
	// +kubebuilder:default=Manager
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.candidates.source is immutable: delete and re-create the group to change who competes"
	// +optional
	Source CandidateSource `json:"source,omitempty"`

	// podSelector picks the candidate pods in the group's namespace. Required with
	// source Pods, refused otherwise.
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])",message="podSelector.matchExpressions operator must be one of In, NotIn, Exists, DoesNotExist",fieldPath=".matchExpressions"
	// +kubebuilder:validation:XValidation:rule="!has(self.matchExpressions) || self.matchExpressions.all(e, (e.operator in ['In', 'NotIn']) == (has(e.values) && size(e.values) > 0))",message="podSelector.matchExpressions values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist",fieldPath=".matchExpressions"
	// +optional
	PodSelector *metav1.LabelSelector `json:"podSelector,omitempty"`

	// preferNewestRevision (source Pods) moves leadership once, as a handover, to a
	// Ready pod of the workload's newest revision (the owner's pod-template-hash or
	// controller-revision-hash) as soon as there is one while the leader belongs to
	// an older revision, so that a rolling update moves leadership once instead of
	// with every old pod it replaces. false: a leader that can lead is never moved
	// (but for preferredHolder); when it has to be replaced, the newest revision
	// still comes first. Default true.
	// +optional
	PreferNewestRevision *bool `json:"preferNewestRevision,omitempty"`
}

// LeaderGroupStatus is the election as the manager last observed it. The Lease is
// the truth: everything here is derived from it.
type LeaderGroupStatus struct {
	// observedGeneration is the spec generation this status was computed from.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// lease is the resolved lock, as namespace/name.
	// +optional
	Lease string `json:"lease,omitempty"`

	// holder is the identity holding a valid lease; empty while nobody does.
	// +optional
	Holder string `json:"holder,omitempty"`

	// acquiredAt is when the current holder acquired the lease.
	// +optional
	AcquiredAt *metav1.Time `json:"acquiredAt,omitempty"`

	// transitions is the Lease's leaseTransitions: the epoch, which only grows and
	// can serve as a fencing token.
	// +optional
	Transitions int32 `json:"transitions,omitempty"`

	// candidates are who competes now (sources Manager and Pods).
	// +listType=map
	// +listMapKey=identity
	// +optional
	Candidates []CandidateStatus `json:"candidates,omitempty"`

	// history of holders, newest first, at most spec.historyLimit entries.
	// +listType=atomic
	// +optional
	History []HistoryEntry `json:"history,omitempty"`

	// conditions: Ready (the group is served as declared) and LeaderElected (a
	// holder has a valid lease).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// CandidateStatus is one candidate of a group.
type CandidateStatus struct {
	// identity the candidate competes under.
	Identity string `json:"identity"`

	// ready is whether the candidate can lead now.
	Ready bool `json:"ready"`
}

// HistoryEntry is one holder's term.
type HistoryEntry struct {
	// holder is the identity that held the lease.
	Holder string `json:"holder"`

	// transition is the Lease's leaseTransitions during this term.
	Transition int32 `json:"transition"`

	// acquiredAt is when the term began.
	AcquiredAt metav1.Time `json:"acquiredAt"`

	// endedAt is when the term ended; empty for the current term.
	// +optional
	EndedAt *metav1.Time `json:"endedAt,omitempty"`

	// startReason says how the term began.
	// +optional
	StartReason StartReason `json:"startReason,omitempty"`

	// endReason says how the term ended.
	// +optional
	EndReason EndReason `json:"endReason,omitempty"`

	// leaderlessFor is how long nobody held the lease before this term: from when
	// the previous term ended to this term's acquireTime. Both instants are the
	// writers' own records where they wrote one (the releaser's released-at, the
	// acquirer's acquireTime), so it is exact on one machine and subject to clock
	// offset between machines; where the end was not recorded, the end is when the
	// status writer saw it (an expiry: when the lease expired on the status writer's
	// clock). Absent when unknown.
	// +optional
	LeaderlessFor *metav1.Duration `json:"leaderlessFor,omitempty"`

	// missedTransitions counts transitions before this term that the observer did
	// not see (for example while no manager was writing status).
	// +optional
	MissedTransitions int32 `json:"missedTransitions,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=lg,categories=election
// +kubebuilder:printcolumn:name="Holder",type=string,JSONPath=`.status.holder`
// +kubebuilder:printcolumn:name="Since",type=date,JSONPath=`.status.acquiredAt`
// +kubebuilder:printcolumn:name="Transitions",type=integer,JSONPath=`.status.transitions`
// +kubebuilder:printcolumn:name="Source",type=string,JSONPath=`.spec.candidates.source`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Lease",type=string,JSONPath=`.status.lease`,priority=1
// +kubebuilder:printcolumn:name="Lease-Duration",type=string,JSONPath=`.spec.leaseDuration`,priority=1
// +kubebuilder:printcolumn:name="Renew-Deadline",type=string,JSONPath=`.spec.renewDeadline`,priority=1
// +kubebuilder:printcolumn:name="Retry-Period",type=string,JSONPath=`.spec.retryPeriod`,priority=1

// LeaderGroup declares a Lease and its timings; election-manager keeps exactly one
// holder of it among the group's candidates and records who led, since when, and
// why leadership changed.
type LeaderGroup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the lock, its timings and its candidates.
	// +kubebuilder:default={}
	// +optional
	Spec LeaderGroupSpec `json:"spec,omitempty"`

	// status is the election as last observed.
	// +optional
	Status LeaderGroupStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// LeaderGroupList is a list of LeaderGroups.
type LeaderGroupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LeaderGroup `json:"items"`
}

func init() {
	SchemeBuilder.Register(&LeaderGroup{}, &LeaderGroupList{})
}
