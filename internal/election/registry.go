package election

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// Registry runs many electors in one process, by key (the controller uses the
// LeaderGroup's namespace/name). They share one client and one LeaseInformer; each
// costs one goroutine and one timer. Electors live until Stop or StopAll, not
// until some caller's context ends: a reconcile's context is short-lived.
type Registry struct {
	client coordinationv1client.LeasesGetter
	leases *LeaseInformer
	logger klog.Logger
	opts   Options

	mu       sync.Mutex
	electors map[string]*Elector
	// stopped: StopAll ran. A late Ensure (a reconcile still in flight at shutdown)
	// must not start an elector that nobody would stop.
	stopped bool
}

// NewRegistry returns an empty registry. Electors log through logger, with the
// key, lease and identity added.
func NewRegistry(client coordinationv1client.LeasesGetter, leases *LeaseInformer, logger klog.Logger, opts Options) *Registry {
	switch n := opts.MaxConcurrentWrites; {
	case n == 0:
		opts.writes = newWriteSlots(defaultMaxConcurrentWrites)
	case n > 0:
		opts.writes = newWriteSlots(n)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	opts.pace = newPacer(opts.Clock, logger)
	return &Registry{client: client, leases: leases, logger: logger, opts: opts, electors: map[string]*Elector{}}
}

// Strained tells whether the registry's electors are spacing out their renewals
// because the API server answers slowly: the process's other writes should wait.
func (r *Registry) Strained() bool { return r.opts.pace.strained() }

// Ensure makes the elector for key run with cfg:
//   - none runs: a new one starts with cb;
//   - one runs for the same Lease and Identity: it takes cfg for its next write, so
//     a change of timings, labels or release policy keeps leadership and epoch (cb
//     is not replaced);
//   - one runs for another Lease or Identity: it is stopped (and releases, if it
//     leads and its config says so) before a new one starts with cb.
func (r *Registry) Ensure(key string, cfg Config, cb Callbacks) (*Elector, error) {
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		return nil, errRegistryStopped
	}
	old := r.electors[key]
	if old != nil {
		if cfg.sameElection(old.config()) {
			r.mu.Unlock()
			return old, old.UpdateConfig(cfg)
		}
	}
	e, err := New(cfg, r.client, r.leases, cb, r.opts)
	if err != nil {
		r.mu.Unlock()
		return nil, err
	}
	r.electors[key] = e
	r.mu.Unlock()
	if old != nil {
		// Outside the lock: a release may take up to renewDeadline. The new elector
		// starts only after, so one key never has two electors at once.
		old.Stop()
	}
	e.Start(klog.NewContext(context.Background(), r.logger.WithValues("key", key)))
	return e, nil
}

// Get returns the elector for key, nil when none runs.
func (r *Registry) Get(key string) *Elector {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.electors[key]
}

// Keys lists the keys of the running electors, sorted.
func (r *Registry) Keys() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := make([]string, 0, len(r.electors))
	for k := range r.electors {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Stop stops the elector for key gracefully (see Elector.Stop) and tells whether one
// was running.
func (r *Registry) Stop(key string) bool {
	r.mu.Lock()
	e := r.electors[key]
	delete(r.electors, key)
	r.mu.Unlock()
	if e == nil {
		return false
	}
	e.Stop()
	return true
}

// StopAll stops every elector for good (Ensure fails after it) and returns when all
// have finished. Followers stop at once. Leaders release their Leases a few at a
// time (releaseWindow in flight, the next as soon as one is done): a thousand
// releases sent at once, and the thousand takeovers they call for, queue up in the
// API server together, and every group waits out the whole burst leaderless. A
// few at a time, each group waits only for its own takeover, and the pace is the
// server's: a release returns when it is done with it. Whatever has not stopped
// by deadline then stops at once (a zero deadline: everything at once), so that a
// slow server cannot make the process outlive its grace period while it leads.
func (r *Registry) StopAll(deadline time.Time) {
	r.mu.Lock()
	all := r.electors
	r.electors, r.stopped = map[string]*Elector{}, true
	r.mu.Unlock()
	var leaders []*Elector
	var wg sync.WaitGroup
	stop := func(e *Elector, window chan struct{}) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.Stop()
			if window != nil {
				<-window
			}
		}()
	}
	for _, e := range all {
		if e.IsLeader() {
			leaders = append(leaders, e)
		} else {
			stop(e, nil)
		}
	}
	window := make(chan struct{}, releaseWindow)
	budget := r.opts.Clock.NewTimer(max(deadline.Sub(r.opts.Clock.Now()), 0))
	defer budget.Stop()
	spent := !r.opts.Clock.Now().Before(deadline)
	for _, e := range leaders {
		if !spent {
			select {
			case window <- struct{}{}:
				stop(e, window)
				continue
			case <-budget.C():
				spent = true // the rest at once
			}
		}
		stop(e, nil)
	}
	wg.Wait()
}

// releaseWindow is how many leaders StopAll lets release at once: enough to keep
// a server that answers in 50 ms busy with 160 handovers a second, few enough that
// the takeovers they call for do not queue behind each other.
const releaseWindow = 8

var errRegistryStopped = errors.New("the elector registry has stopped: the process is shutting down")
