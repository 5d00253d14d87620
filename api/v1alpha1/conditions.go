package v1alpha1

// Condition types of a LeaderGroup.
const (
	// ConditionReady is True when the group is served as declared.
	ConditionReady = "Ready"
	// ConditionLeaderElected is True while a holder has a valid lease.
	ConditionLeaderElected = "LeaderElected"
	// ConditionPreferredHolder is True while spec.preferredHolder leads; absent when
	// no holder is preferred.
	ConditionPreferredHolder = "PreferredHolder"
)

// Condition reasons of a LeaderGroup.
const (
	// ReasonReconciled: the group is served as declared.
	ReasonReconciled = "Reconciled"
	// ReasonInvalidSpec: the spec cannot be served as written; the message says why.
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonConflict: an older group names the same Lease; this one runs nothing.
	ReasonConflict = "Conflict"
	// ReasonNoCandidates: no candidate can lead.
	ReasonNoCandidates = "NoCandidates"
	// ReasonSuspended: spec.suspend is true.
	ReasonSuspended = "Suspended"
	// ReasonLeaseNamespaceNotAllowed: the Lease is in a namespace this group may not use.
	ReasonLeaseNamespaceNotAllowed = "LeaseNamespaceNotAllowed"
	// ReasonLeaseReserved: the Lease is the manager's own lock or one of its presence
	// Leases, which no group may elect on.
	ReasonLeaseReserved = "LeaseReserved"
	// ReasonSourceNotSupported: this manager cannot serve the group's candidate source.
	ReasonSourceNotSupported = "SourceNotSupported"
	// ReasonElected: a holder has a valid lease.
	ReasonElected = "Elected"
	// ReasonNoHolder: the Lease is absent or released.
	ReasonNoHolder = "NoHolder"
	// ReasonLeaseExpired: the holder stopped renewing and leaseDuration has passed.
	ReasonLeaseExpired = "LeaseExpired"
	// ReasonEpochWentBack: the Lease shows an epoch below the one history recorded
	// (someone re-created it, outside this project's writers): who leads is not
	// shown until its epoch passes the recorded one, and LeaderElected is Unknown.
	ReasonEpochWentBack = "EpochWentBack"
	// ReasonHonoured: the preferred holder leads.
	ReasonHonoured = "Honoured"
	// ReasonHandingOver: the preferred holder is a live candidate and is being handed
	// leadership.
	ReasonHandingOver = "HandingOver"
	// ReasonHandoverLapsed: the preferred holder is live but did not take the Lease
	// handed over to it within its reservation; leadership stays where it is until
	// the spec changes or the preferred holder joins again.
	ReasonHandoverLapsed = "HandoverLapsed"
	// ReasonNotACandidate: the preferred holder is not a live candidate; leadership
	// stays where it is.
	ReasonNotACandidate = "NotACandidate"
)

// StartReason says how a holder's term began.
// +kubebuilder:validation:Enum=Elected;AfterRelease;AfterExpiry;Handover;Unknown
type StartReason string

const (
	// StartElected: the first holder of a new or empty Lease.
	StartElected StartReason = "Elected"
	// StartAfterRelease: acquired a Lease its previous holder released.
	StartAfterRelease StartReason = "AfterRelease"
	// StartAfterExpiry: took over a Lease its previous holder stopped renewing.
	StartAfterExpiry StartReason = "AfterExpiry"
	// StartHandover: leadership was moved here on purpose.
	StartHandover StartReason = "Handover"
	// StartUnknown: the observer could not tell.
	StartUnknown StartReason = "Unknown"
)

// EndReason says how a holder's term ended.
// +kubebuilder:validation:Enum=Released;Expired;Handover;Unknown
type EndReason string

const (
	// EndReleased: the holder released the Lease.
	EndReleased EndReason = "Released"
	// EndExpired: the holder stopped renewing and leaseDuration passed.
	EndExpired EndReason = "Expired"
	// EndHandover: leadership was moved away on purpose.
	EndHandover EndReason = "Handover"
	// EndUnknown: the observer could not tell.
	EndUnknown EndReason = "Unknown"
)
