package election

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// Callbacks tell the caller about leadership. They run on the elector's goroutine,
// one at a time and in order, so they must return quickly (hand work to another
// goroutine); while one runs the elector cannot end leadership on time. Any may be
// nil.
type Callbacks struct {
	// OnStartedLeading: this elector leads, in term epoch (spec.leaseTransitions after
	// its acquisition; a term only ever gets a higher epoch than the ones before).
	OnStartedLeading func(epoch int32)
	// OnStoppedLeading: this elector no longer leads. Only ever called after
	// OnStartedLeading, at most once per term, and no later than the send time of the
	// last successful renewal + renewDeadline (plus scheduling delay), or than a
	// later renewal's send time + its renewDeadline when timings shrank (its answer
	// may be lost after the API server applied it).
	OnStoppedLeading func()
	// OnNewLeader: the holder this elector sees changed; "" means no holder (released
	// or deleted). Called with this elector's own identity before OnStartedLeading.
	OnNewLeader func(identity string)
}

// LeaderInfo is what an elector knows about the current term.
type LeaderInfo struct {
	// Holder is the identity the record names, "" when none.
	Holder string
	// Epoch is the record's leaseTransitions.
	Epoch int32
	// Since is when this elector (local clock) first saw this holder and epoch, or
	// acquired them itself; zero when there is no holder.
	Since time.Time
	// Leading: this elector leads now (as IsLeader).
	Leading bool
	// While leading: the send time of the last successful write (acquisition or
	// renewal), and the deadline at which leadership ends unless another renewal
	// succeeds first: LastRenewal + renewDeadline, or earlier once a renewal with a
	// shorter renewDeadline is sent (its send time + its renewDeadline).
	LastRenewal, LeadingUntil time.Time
}

// Options tune electors; the zero value is fine.
type Options struct {
	// Clock defaults to the real clock; tests may inject another.
	Clock clock.Clock
	// MaxConcurrentWrites caps the Lease writes in flight from the electors of one
	// Registry, which share one client. kube-apiserver allows 100 concurrent HTTP/2
	// streams per connection by default; past that, Go's transport dials new TLS
	// connections, one per waiting request, and a thousand electors starting at once
	// turn into thousands of handshakes. Past what the server handles at once, more
	// writes in flight only wait in its queue instead of here, where a write whose
	// deadline passes is never sent (one sent late can land after its elector gave
	// up on it) and renewals go first (see writeSlots). A write waiting here already
	// runs against its deadline. 0 means 32; negative means no cap. Used by
	// NewRegistry only.
	MaxConcurrentWrites int

	// writes are the Registry's shared write slots (nil: no cap).
	writes *writeSlots
	// pace is the Registry's shared renewal pacer (nil: renew every retryPeriod).
	pace *pacer
}

// defaultMaxConcurrentWrites leaves room under kube-apiserver's 100 streams for the
// informer's watches and other requests on the same connection, and is more than a
// 2-core kube-apiserver works on at once.
const defaultMaxConcurrentWrites = 32

// Elector competes for one Lease as one identity, from Start until Stop, leading and
// following as often as the election goes back and forth. An Elector runs one
// goroutine (plus one per API write in flight) and one timer.
type Elector struct {
	client coordinationv1client.LeasesGetter
	leases *LeaseInformer
	clock  clock.Clock
	writes *writeSlots
	pace   *pacer
	cb     Callbacks
	key    types.NamespacedName
	id     string

	cfgMu sync.Mutex
	cfg   *Config // replaced by UpdateConfig; Lease and Identity never change

	// wake has room for one signal: the informer and UpdateConfig never block on it.
	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	start  sync.Once

	mu           sync.Mutex // guards the fields below, which the loop writes
	leading      bool
	leadingUntil time.Time
	lastRenewal  time.Time // send time of the last successful write while leading
	info         LeaderInfo
	stepDown     *stepDownRequest // asked by StepDown, not yet taken by the loop
}

// New returns an elector for cfg that reads its Lease from leases and writes it with
// client. leases must serve cfg.Lease.Namespace; it may be started before or after.
func New(cfg Config, client coordinationv1client.LeasesGetter, leases *LeaseInformer, cb Callbacks, opts Options) (*Elector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid elector config for lease %s: %w", cfg.Lease, err)
	}
	if client == nil || leases == nil {
		return nil, errors.New("an elector needs a lease client and a LeaseInformer")
	}
	if !leases.Serves(cfg.Lease.Namespace) {
		return nil, fmt.Errorf("lease.namespace: the LeaseInformer does not watch namespace %q", cfg.Lease.Namespace)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	return &Elector{
		client: client,
		leases: leases,
		clock:  opts.Clock,
		writes: opts.writes,
		pace:   opts.pace,
		cb:     cb,
		key:    cfg.Lease,
		id:     cfg.Identity,
		cfg:    cfg.clone(),
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}, nil
}

// Start runs the elector until ctx is done or Stop is called; both are a graceful
// stop. The logger comes from ctx (klog.FromContext). Calls after the first do
// nothing.
func (e *Elector) Start(ctx context.Context) {
	e.start.Do(func() {
		ctx, e.cancel = context.WithCancel(ctx)
		logger := klog.FromContext(ctx).WithValues("lease", e.key.String(), "identity", e.id)
		e.leases.subscribe(e.key, e.wake)
		go e.run(klog.NewContext(ctx, logger))
	})
}

// Stop ends the elector for good and returns once its goroutine has finished: when
// it led, leadership has ended (OnStoppedLeading has returned) and, with
// ReleaseOnCancel, the release has been written or has failed. Stop before Start
// only prevents the start.
func (e *Elector) Stop() {
	e.start.Do(func() { close(e.done) })
	if e.cancel != nil {
		e.cancel()
	}
	<-e.done
}

// Done is closed when the elector has stopped.
func (e *Elector) Done() <-chan struct{} { return e.done }

// IsLeader tells whether this elector leads now. It reads the clock itself, so it
// turns false at the deadline even if the elector's goroutine is late.
func (e *Elector) IsLeader() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leading && !reached(e.clock.Now(), e.leadingUntil)
}

// Leader returns what this elector knows about the current term.
func (e *Elector) Leader() LeaderInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	info := e.info
	info.Leading = e.leading && !reached(e.clock.Now(), e.leadingUntil)
	if info.Leading {
		info.LastRenewal, info.LeadingUntil = e.lastRenewal, e.leadingUntil
	}
	return info
}

// LastRenewal is the send time of the last successful write (acquisition or
// renewal) of the current or the most recent term; zero if this elector never led.
// Unlike LeaderInfo.LastRenewal it stays readable once leadership has ended (from
// OnStoppedLeading, say), so that a caller can tell when others may take over: no
// earlier than LastRenewal + leaseDuration, on their clocks (the shortest
// leaseDuration the term's renewals carried, when the timings shrank).
func (e *Elector) LastRenewal() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastRenewal
}

// Identity is this elector's holder identity.
func (e *Elector) Identity() string { return e.id }

// Config returns a copy of the current configuration.
func (e *Elector) Config() Config {
	return *e.config().clone()
}

// UpdateConfig gives a running elector new timings, labels or release policy. The
// next write uses them: leadership and epoch are kept. A shorter renewDeadline
// takes effect when that write is sent, not when it succeeds: leadership then ends
// by its send time + the new renewDeadline at the latest. Lease and Identity cannot
// change (that is another candidate: stop this elector and start a new one).
func (e *Elector) UpdateConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid elector config for lease %s: %w", cfg.Lease, err)
	}
	if !cfg.sameElection(&Config{Lease: e.key, Identity: e.id}) {
		return fmt.Errorf("lease and identity of a running elector cannot change (have %s as %q)", e.key, e.id)
	}
	e.cfgMu.Lock()
	e.cfg = cfg.clone()
	e.cfgMu.Unlock()
	e.signal()
	return nil
}

// Check is a health check in the spirit of client-go's HealthzAdaptor: it fails when
// the elector still considers itself leader more than tolerance after its own
// deadline, which only happens if its goroutine is stuck (in a callback, say).
func (e *Elector) Check(tolerance time.Duration) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.leading && e.clock.Since(e.leadingUntil) > tolerance {
		return fmt.Errorf("elector for lease %s has not ended its leadership %s after its renew deadline",
			e.key, e.clock.Since(e.leadingUntil).Round(time.Millisecond))
	}
	return nil
}

func (e *Elector) config() *Config {
	e.cfgMu.Lock()
	defer e.cfgMu.Unlock()
	return e.cfg
}

func (e *Elector) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// setLeading records a term this elector won (or renewed) so that IsLeader and
// Leader answer without waiting for the loop.
func (e *Elector) setLeading(epoch int32, sent, until, now time.Time) (started, newHolder bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	started = !e.leading
	e.leading, e.lastRenewal, e.leadingUntil = true, sent, until
	if started {
		newHolder = e.info.Holder != e.id
		e.info = LeaderInfo{Holder: e.id, Epoch: epoch, Since: now}
	}
	return started, newHolder
}

// shortenLeading brings the leadership deadline forward to until (never later) and
// returns the deadline now in force.
func (e *Elector) shortenLeading(until time.Time) time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	if until.Before(e.leadingUntil) {
		e.leadingUntil = until
	}
	return e.leadingUntil
}

// clearLeading ends this elector's view of leading and tells whether it was leading.
func (e *Elector) clearLeading() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	was := e.leading
	e.leading = false
	return was
}

// leadingState is the loop's view: leading and its deadline.
func (e *Elector) leadingState() (bool, time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leading, e.leadingUntil
}

// observeHolder records the holder and epoch the informer shows (followers only)
// and tells whether the holder changed.
func (e *Elector) observeHolder(holder string, epoch int32, now time.Time) (changed bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if holder == e.info.Holder && epoch == e.info.Epoch {
		return false
	}
	changed = holder != e.info.Holder
	e.info = LeaderInfo{Holder: holder, Epoch: epoch}
	if holder != "" {
		e.info.Since = now
	}
	return changed
}

// reached tells whether now is at or past deadline, on either clock reading: the
// monotonic one (immune to clock steps) and the wall one. Go's monotonic clock
// stops while the machine is suspended (a laptop's lid, a paused VM), while the
// other candidates' clocks run on: after a resume only the wall clock shows that the
// deadline has passed. Either reading can only end leadership earlier, never later.
func reached(now, deadline time.Time) bool {
	return !now.Before(deadline) || !now.Round(0).Before(deadline.Round(0))
}
