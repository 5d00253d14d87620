package app

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/election-manager/election-manager/internal/clientconfig"
	"github.com/election-manager/election-manager/internal/election"
	"github.com/election-manager/election-manager/internal/supervisor"
)

// ExitUsage is the exit code for options that do not validate.
const ExitUsage = 2

// statePoll is how often /leader re-reads the elector's view, for changes no
// callback reports.
const statePoll = 100 * time.Millisecond

// Run joins the election and supervises the command until a signal arrives on
// signals or the child exits by itself, and returns the process's exit code.
func Run(ctx context.Context, o *Options, signals <-chan os.Signal) (int, error) {
	logger := logr.FromContextOrDiscard(ctx)
	if err := o.Validate(); err != nil {
		return ExitUsage, err
	}
	stopCtx, again := watchSignals(ctx, logger, signals)
	cfg, err := o.Complete()
	if err != nil {
		return 1, err
	}
	t, err := resolveTarget(stopCtx, logger, cfg, o)
	if err != nil {
		return 1, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return 1, fmt.Errorf("creating the clientset: %w", err)
	}
	if err := clientconfig.WithRetry(stopCtx, logger, cfg.Host, func(ctx context.Context) error {
		return checkLeaseAccess(ctx, logger, cs, t.lease)
	}); err != nil {
		return 1, err
	}
	return run(ctx, stopCtx, again, logger, o, t, cs)
}

// resolveTarget is the election to join: the LeaderGroup's, or the flags'. With a
// command, its timings must leave the child time to stop.
func resolveTarget(ctx context.Context, logger logr.Logger, cfg *rest.Config, o *Options) (*target, error) {
	t := flagTarget(o)
	if o.Group != "" {
		dyn, err := dynamic.NewForConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("creating the dynamic client: %w", err)
		}
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("creating the clientset: %w", err)
		}
		key := types.NamespacedName{Namespace: o.Namespace, Name: o.Group}
		if err := clientconfig.WithRetry(ctx, logger, cfg.Host, func(ctx context.Context) (err error) {
			t, err = groupTarget(ctx, dyn, cs.Discovery(), key)
			return err
		}); err != nil {
			return nil, err
		}
	}
	if len(o.Command) > 0 {
		if err := t.budget(o).Validate(t.names); err != nil {
			if t.group.Name != "" {
				return nil, fmt.Errorf("LeaderGroup %s: %w", t.group, err)
			}
			return nil, err
		}
	}
	return t, nil
}

// run is the election itself, once everything has been checked.
func run(ctx, stopCtx context.Context, again <-chan struct{}, logger logr.Logger, o *Options, t *target, cs kubernetes.Interface) (int, error) {
	leases, err := election.NewLeaseInformer(cs, clock.RealClock{}, t.lease.Namespace)
	if err != nil {
		return 1, err
	}
	var (
		el    *election.Elector
		sup   *supervisor.Supervisor
		state *leaderState
	)
	budget := t.budget(o)
	childEnv := func(epoch int32) []string {
		return []string{"ELECTION_HOLDER=" + o.ID, "ELECTION_EPOCH=" + strconv.Itoa(int(epoch)),
			"ELECTION_GROUP=" + t.groupName(), "ELECTION_LEASE=" + t.lease.String()}
	}
	if len(o.Command) > 0 {
		sup = supervisor.New(supervisor.Config{
			Command: o.Command,
			Env:     childEnv,
			Budget:  budget,
			Restart: o.RestartChild,
			Logger:  logger.WithName("child"),
		})
	}
	health := newHealthCheck(o, childEnv, logger, t.leaseDuration, func(epoch int32, reason string, backoff time.Duration) {
		// The child goes first, by the lease rules, while this process still
		// leads and renews: the Lease is released only once it is gone.
		logger.Info("Child unhealthy: stepping down", "epoch", epoch, "reason", reason, "backoff", backoff.String())
		<-sup.Sick(el.LastRenewal())
		state.steppedDown(reason, time.Now(), backoff)
		el.StepDown(epoch, backoff, reason) // not a later term, which has a child of its own
	})
	// The callbacks run on the elector's goroutine and only hand over: the
	// supervisor first (it must signal the child at once), then /leader.
	group := &groupFollower{logger: logger}
	el, err = election.New(t.electorConfig(o.ID, group.follow), cs.CoordinationV1(), leases, election.Callbacks{
		OnStartedLeading: func(epoch int32) {
			if sup != nil {
				sup.Lead(epoch)
			}
			if health != nil {
				health.lead(epoch)
			}
			state.publish()
		},
		OnStoppedLeading: func() {
			if sup != nil {
				sup.Lost(el.LastRenewal())
			}
			if health != nil {
				health.lost()
			}
			state.publish()
		},
		OnNewLeader: func(holder string) {
			if holder != o.ID {
				logger.Info("Leader changed", "holder", holder)
			}
			state.publish()
		},
	}, election.Options{})
	if err != nil {
		return 1, err
	}
	group.el = el
	state = newLeaderState(leaderView{Identity: o.ID, Lease: t.lease.String(), Group: t.groupString()}, el.Leader)

	if o.HTTPAddr != "" {
		done := make(chan struct{}) // ends /leader streams at exit, after the last change
		checks := []func() error{func() error {
			// Unhealthy when it still thinks it leads at the point others may take
			// over: its goroutine is stuck.
			return el.Check(t.leaseDuration - t.renewDeadline)
		}}
		if sup != nil {
			checks = append(checks, sup.Check)
		}
		stopHTTP, err := serveHTTP(logger, o.HTTPAddr, newHandler(state, checks, done))
		if err != nil {
			return 1, err
		}
		defer func() {
			close(done)
			stopHTTP()
		}()
	}

	// The election outlives the first signal: the child stops while this process
	// still leads, and only then does the elector release.
	runCtx, cancel := context.WithCancel(klog.NewContext(context.WithoutCancel(ctx), logger))
	defer cancel()
	if sup != nil {
		sup.Start()
	}
	leases.Start(runCtx)
	el.Start(runCtx)
	go state.poll(runCtx, statePoll)
	logJoin(logger, o, t, budget)

	var exited <-chan supervisor.Exit
	if sup != nil {
		exited = sup.Exited()
	}
	select {
	case <-stopCtx.Done():
		if health != nil {
			health.lost() // the child is stopping anyway: no step-down now
		}
		if sup != nil {
			stopped := sup.Shutdown(el.Leader().LastRenewal)
			select {
			case <-stopped:
			case <-again:
				sup.Shutdown(time.Time{})
				<-stopped
			}
		}
		el.Stop()
		logger.Info("Stopped")
		return 0, nil
	case ex := <-exited:
		logger.Info("Child exited by itself: releasing the Lease and exiting with its code", "code", ex.Code)
		el.Stop()
		return ex.Code, nil
	}
}

func logJoin(logger logr.Logger, o *Options, t *target, b supervisor.Budget) {
	kv := []any{"identity", o.ID, "lease", t.lease.String(), "leaseDuration", t.leaseDuration.String(),
		"renewDeadline", t.renewDeadline.String(), "retryPeriod", t.retryPeriod.String()}
	if t.group.Name != "" {
		kv = append(kv, "group", t.group.String())
	}
	if len(o.Command) > 0 {
		kv = append(kv, "command", o.Command, "gracePeriod", b.Grace().String(),
			"killBy", "lastRenewal + "+b.Horizon().String())
	}
	if o.HealthCheck() {
		kv = append(kv, "healthPeriod", o.HealthPeriod.String(), "healthFailures", o.HealthFailures,
			"stepDownBackoff", o.stepDownBackoff(t.leaseDuration).String())
	}
	logger.Info("Joining the election", kv...)
}

// watchSignals returns a context that ends at the first signal, and a channel
// closed at the second.
func watchSignals(ctx context.Context, logger logr.Logger, signals <-chan os.Signal) (context.Context, <-chan struct{}) {
	stopCtx, stop := context.WithCancel(ctx)
	again := make(chan struct{})
	go func() {
		n := 0
		for sig := range signals {
			switch n++; n {
			case 1:
				logger.Info("Stopping: stopping the child, then releasing the Lease", "signal", sig.String())
				stop()
			case 2:
				logger.Info("Asked again: killing the child now", "signal", sig.String())
				close(again)
			}
		}
	}()
	return stopCtx, again
}
