package election

import (
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/election-manager/election-manager/internal/leaserecord"
	"github.com/election-manager/election-manager/internal/timing"
)

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
	// HandOverAttempt names the attempt to hand over to HandOverTo. When the target
	// does not take a Lease reserved for it, the record remembers the lapse with its
	// attempt (through later terms), and no holder hands over to it again under the
	// same attempt: a target that cannot come costs one short reservation per
	// attempt, not one per term. Another value is a new attempt.
	HandOverAttempt string
	// Live, when set, is asked right before a handover whether HandOverTo is still
	// a live candidate: the config may be older than the target's departure. No
	// handover while it says no.
	Live func(identity string) bool
	// Successor, when set, names the live candidate that takes the Lease first once
	// prev, its holder, released it or let it expire ("" when none is preferred).
	// Every other candidate gives it timing's SuccessorHeadStart before trying
	// itself. When every candidate raced for every free Lease, all writes but one
	// were refused, each after costing kube-apiserver most of a renewal, and a
	// process's graceful stop sent a burst of them. A successor that does not come
	// delays the takeover by the head start only.
	Successor func(prev string) string
	// OwnerReferences are set on a Lease this elector creates (never changed later),
	// so that deleting the owner deletes the Lease.
	OwnerReferences []metav1.OwnerReference
	// EpochFloor, when set, returns the highest epoch the election is known to have
	// handed out, beyond what this process saw: a LeaderGroup's recorded transitions.
	// It is read before every create and acquisition, so that no epoch is handed out
	// again; and so that a Lease that had a holder is re-created only after that
	// holder's term must have ended. fresh asks for a read from the API server, not
	// a cache: before a create, and before the first write to a Lease object no
	// writer that keeps the epoch wrote (one without leaserecord.Finalizer), as a
	// cache may not show yet the epoch a deleted Lease was recorded with. An error
	// postpones the write. Without it, a Lease deleted before this process saw it
	// starts again from what this process knows (see the README's guarantees). It
	// may call UpdateConfig: the write that follows uses the config it leaves.
	EpochFloor func(fresh bool) (int32, error)
	// KeepEpoch puts leaserecord.Finalizer on the Lease this elector writes: a
	// deleted Lease then waits, terminating, until its group's status records its
	// epoch, which EpochFloor reads. Only for a group whose status writer runs.
	KeepEpoch bool
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
	for _, k := range leaserecord.Reserved {
		if _, ok := c.Annotations[k]; ok {
			// The elector writes these to tell observers how terms changed hands.
			errs = append(errs, fmt.Errorf("annotations: %s is the elector's own", k))
		}
	}
	if err := c.Timings().Validate(timing.ConfigNames); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Timings are the config's durations.
func (c *Config) Timings() timing.Timings {
	return timing.Timings{LeaseDuration: c.LeaseDuration, RenewDeadline: c.RenewDeadline, RetryPeriod: c.RetryPeriod}
}

// writer is what this elector's writes set on the Lease.
func (c *Config) writer() leaserecord.Writer {
	return leaserecord.Writer{Identity: c.Identity, LeaseDuration: c.LeaseDuration,
		Labels: c.Labels, Annotations: c.Annotations, OwnerReferences: c.OwnerReferences, KeepEpoch: c.KeepEpoch}
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
