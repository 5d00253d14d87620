package election

import (
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// JitterFactor is client-go's factor: renewDeadline must exceed retryPeriod by it,
// so that at least one retry fits into the deadline even with a jittered period.
const JitterFactor = 1.2

// NodeLeaseNamespace holds the kubelets' node heartbeats. Electors never use it and
// a LeaseInformer never watches it: thousands of node Leases renewing every 10s would
// cost every follower's process a stream of events it has no use for.
const NodeLeaseNamespace = "kube-node-lease"

// Config describes one candidate in one election.
type Config struct {
	// Lease is the lock. It must be in a namespace the LeaseInformer watches.
	Lease types.NamespacedName
	// Identity names this candidate in spec.holderIdentity. Two live candidates must
	// never share one: the elector treats a record naming itself, when it does not
	// lead, like any other holder's (it waits for expiry), but cannot tell apart two
	// processes that both believe they are the same identity.
	Identity string
	// LeaseDuration is how long a follower waits, on its own clock, without seeing the
	// record change before it takes the Lease over. Stored in the Lease as whole
	// seconds, so it must be a whole number of seconds and at least 1s.
	// Core clients default this to 15s.
	LeaseDuration time.Duration
	// RenewDeadline is how long the leader keeps leading after sending its last
	// successful renewal. Core clients default this to 10s.
	RenewDeadline time.Duration
	// RetryPeriod is the interval between renewals, and the cap of the backoff
	// between failed acquisition attempts. Core clients default this to 2s.
	RetryPeriod time.Duration
	// ReleaseOnCancel makes a graceful stop while leading clear the holder at once,
	// so a follower can take over without waiting for LeaseDuration.
	ReleaseOnCancel bool
	// Labels are set on the Lease on every write of this elector (other labels are
	// kept), like client-go's LeaseLock.Labels.
	Labels map[string]string
	// Annotations are set on the Lease on every write of this elector, like Labels.
	Annotations map[string]string
	// HandOverTo names a live candidate to hand leadership to: while this elector
	// leads, it releases the Lease for that identity, which takes it at once (other
	// candidates wait for the Lease to expire). Empty, or this elector's own
	// identity: no handover.
	HandOverTo string
	// OwnerReferences are set on a Lease this elector creates (never changed later),
	// so that deleting the owner deletes the Lease.
	OwnerReferences []metav1.OwnerReference
}

// Validate checks the rules client-go checks, plus the ones a Lease imposes. Every
// error names the field it is about.
func (c *Config) Validate() error {
	var errs []error
	if c.Lease.Name == "" {
		errs = append(errs, errors.New("lease.name: must not be empty"))
	}
	if c.Lease.Namespace == "" {
		errs = append(errs, errors.New("lease.namespace: must not be empty"))
	}
	if c.Lease.Namespace == NodeLeaseNamespace {
		errs = append(errs, fmt.Errorf("lease.namespace: %s is reserved for node heartbeats", NodeLeaseNamespace))
	}
	if c.Identity == "" {
		errs = append(errs, errors.New("identity: must not be empty"))
	}
	for _, k := range []string{AnnotationAcquiredHow, AnnotationReleasedBy, AnnotationReleasedAt, AnnotationHandoverTo} {
		if _, ok := c.Annotations[k]; ok {
			// The elector writes these to tell observers how terms changed hands.
			errs = append(errs, fmt.Errorf("annotations: %s is the elector's own", k))
		}
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"leaseDuration", c.LeaseDuration}, {"renewDeadline", c.RenewDeadline}, {"retryPeriod", c.RetryPeriod}} {
		if f.d <= 0 {
			errs = append(errs, fmt.Errorf("%s: must be greater than zero, got %s", f.name, f.d))
		}
	}
	if c.LeaseDuration > 0 && (c.LeaseDuration < time.Second || c.LeaseDuration%time.Second != 0) {
		// The Lease stores integer seconds: 1500ms would be read back as 1s by others.
		errs = append(errs, fmt.Errorf("leaseDuration: must be a whole number of seconds and at least 1s, got %s", c.LeaseDuration))
	}
	if c.LeaseDuration > 0 && c.RenewDeadline > 0 && c.LeaseDuration <= c.RenewDeadline {
		errs = append(errs, fmt.Errorf("leaseDuration: must be greater than renewDeadline (%s), got %s", c.RenewDeadline, c.LeaseDuration))
	}
	if c.RenewDeadline > 0 && c.RetryPeriod > 0 && c.RenewDeadline <= time.Duration(JitterFactor*float64(c.RetryPeriod)) {
		errs = append(errs, fmt.Errorf("renewDeadline: must be greater than retryPeriod*%.1f (%s), got %s",
			JitterFactor, time.Duration(JitterFactor*float64(c.RetryPeriod)), c.RenewDeadline))
	}
	return errors.Join(errs...)
}

// leaseDurationSeconds is what this elector writes into spec.leaseDurationSeconds.
func (c *Config) leaseDurationSeconds() int32 {
	return int32(c.LeaseDuration / time.Second)
}

// sameElection tells whether two configs are the same candidate in the same
// election, so that a running elector may take the other's timings without a new
// acquisition.
func (c *Config) sameElection(o *Config) bool {
	return c.Lease == o.Lease && c.Identity == o.Identity
}

// clone copies the maps and slices so that a caller changing its Config after
// handing it over cannot race with the elector.
func (c *Config) clone() *Config {
	out := *c
	if c.Labels != nil {
		out.Labels = make(map[string]string, len(c.Labels))
		for k, v := range c.Labels {
			out.Labels[k] = v
		}
	}
	if c.Annotations != nil {
		out.Annotations = make(map[string]string, len(c.Annotations))
		for k, v := range c.Annotations {
			out.Annotations[k] = v
		}
	}
	if c.OwnerReferences != nil {
		out.OwnerReferences = make([]metav1.OwnerReference, len(c.OwnerReferences))
		for i := range c.OwnerReferences {
			c.OwnerReferences[i].DeepCopyInto(&out.OwnerReferences[i])
		}
	}
	return &out
}
