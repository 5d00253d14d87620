package app

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/election"
	"github.com/election-manager/election-manager/internal/groups"
	"github.com/election-manager/election-manager/internal/supervisor"
)

// target is the election this process joins, from a LeaderGroup or from flags.
type target struct {
	// group is the LeaderGroup's namespace/name; empty without one.
	group           types.NamespacedName
	lease           types.NamespacedName
	leaseDuration   time.Duration
	renewDeadline   time.Duration
	retryPeriod     time.Duration
	releaseOnCancel bool
	// labels and keepEpoch are what the group asks of every write of its Lease.
	labels    map[string]string
	keepEpoch bool
	// names are how error messages refer to the timings.
	names supervisor.Names
	// readGroup reads the group from the API server (nil without a group): this
	// process has no cache of it.
	readGroup func() (*v1alpha1.LeaderGroup, error)
}

var leaderGroups = v1alpha1.GroupVersion.WithResource("leadergroups")

// flagTarget is the election the flags describe.
func flagTarget(o *Options) *target {
	return &target{
		lease:           types.NamespacedName{Namespace: o.LockNamespace, Name: o.LockName},
		leaseDuration:   o.LeaseDuration,
		renewDeadline:   o.RenewDeadline,
		retryPeriod:     o.RetryPeriod,
		releaseOnCancel: true,
		names: supervisor.Names{LeaseDuration: "--lease-duration", RenewDeadline: "--renew-deadline",
			SafetyMargin: "--safety-margin", GracePeriod: "--grace-period"},
	}
}

// groupTarget reads the LeaderGroup and turns it into an election, or says why it
// cannot be joined.
func groupTarget(ctx context.Context, dyn dynamic.Interface, disco discovery.DiscoveryInterface, key types.NamespacedName) (*target, error) {
	u, err := dyn.Resource(leaderGroups).Namespace(key.Namespace).Get(ctx, key.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, derr := disco.ServerResourcesForGroupVersion(v1alpha1.GroupVersion.String()); apierrors.IsNotFound(derr) {
			return nil, fmt.Errorf("LeaderGroup %s: the LeaderGroup API (%s) is not installed in this cluster: install election-manager's CRD, "+
				"or elect without a group: --lock-name, --lease-duration, --renew-deadline, --retry-period", key, v1alpha1.GroupVersion)
		}
		return nil, fmt.Errorf("LeaderGroup %s not found: create it with candidates.source External, "+
			"or elect without a group: --lock-name, --lease-duration, --renew-deadline, --retry-period", key)
	case apierrors.IsForbidden(err):
		return nil, fmt.Errorf("missing RBAC: cannot get leadergroups.%s in namespace %q; grant the verb get on that resource: %w",
			v1alpha1.GroupVersion.Group, key.Namespace, err)
	case err != nil:
		return nil, fmt.Errorf("reading LeaderGroup %s: %w", key, err)
	}
	g, err := fromUnstructured(u.Object)
	if err != nil {
		return nil, fmt.Errorf("reading LeaderGroup %s: %w", key, err)
	}
	t, err := targetOf(g)
	if err != nil {
		return nil, err
	}
	t.readGroup = func() (*v1alpha1.LeaderGroup, error) {
		// Read before each acquisition: not worth a watch.
		ctx, cancel := context.WithTimeout(context.Background(), t.retryPeriod)
		defer cancel()
		u, err := dyn.Resource(leaderGroups).Namespace(key.Namespace).Get(ctx, key.Name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return fromUnstructured(u.Object)
	}
	return t, nil
}

func fromUnstructured(obj map[string]any) (*v1alpha1.LeaderGroup, error) {
	g := &v1alpha1.LeaderGroup{}
	return g, runtime.DefaultUnstructuredConverter.FromUnstructured(obj, g)
}

// targetOf checks that g may be joined by an outside process and returns its election.
func targetOf(g *v1alpha1.LeaderGroup) (*target, error) {
	key := types.NamespacedName{Namespace: g.Namespace, Name: g.Name}
	switch source := g.Spec.Candidates.Source; source {
	case v1alpha1.SourceExternal:
	case v1alpha1.SourcePods:
		return nil, fmt.Errorf("group %s is of source Pods: the manager elects among its pods; use source External", key)
	default:
		if source == "" {
			source = v1alpha1.SourceManager
		}
		return nil, fmt.Errorf("group %s is of source %s: its electors are the managers; use source External", key, source)
	}
	el := groups.Election(g, "")
	t := &target{
		group:           key,
		lease:           el.Lease,
		leaseDuration:   el.LeaseDuration,
		renewDeadline:   el.RenewDeadline,
		retryPeriod:     el.RetryPeriod,
		releaseOnCancel: el.ReleaseOnCancel,
		labels:          el.Labels,
		keepEpoch:       el.KeepEpoch,
		names: supervisor.Names{LeaseDuration: "spec.leaseDuration", RenewDeadline: "spec.renewDeadline",
			SafetyMargin: "--safety-margin", GracePeriod: "--grace-period"},
	}
	if err := groups.ValidateTimings(g); err != nil {
		return nil, err
	}
	return t, nil
}

// electorConfig is the elector's config for identity. In a group, the group is
// read again before every acquisition: its recorded epochs are the floor, and
// follow learns what it now asks of the Lease's writes, or why it cannot be read.
func (t *target) electorConfig(identity string, follow func(*v1alpha1.LeaderGroup, error)) election.Config {
	cfg := election.Config{
		Lease:           t.lease,
		Identity:        identity,
		LeaseDuration:   t.leaseDuration,
		RenewDeadline:   t.renewDeadline,
		RetryPeriod:     t.retryPeriod,
		ReleaseOnCancel: t.releaseOnCancel,
		Labels:          t.labels,
		KeepEpoch:       t.keepEpoch,
	}
	if t.readGroup != nil {
		cfg.EpochFloor = func(bool) (int32, error) {
			g, err := t.readGroup()
			follow(g, err)
			if err != nil {
				return 0, err
			}
			return groups.EpochFloor(g), nil
		}
	}
	return cfg
}

// groupFollower is what the elector does with its group, read before each
// acquisition.
type groupFollower struct {
	logger logr.Logger
	el     *election.Elector
	// unreadable is why the group could not be read last time ("" when it could):
	// the log says so once, not on every retry.
	unreadable metav1.StatusReason
}

func (f *groupFollower) follow(g *v1alpha1.LeaderGroup, err error) {
	if err != nil {
		why := apierrors.ReasonForError(err)
		if why == metav1.StatusReasonUnknown {
			why = "Unreachable"
		}
		if why != f.unreadable {
			f.unreadable = why
			f.logger.Info("Not campaigning: cannot read the LeaderGroup, whose recorded epochs a new term must start above; the current leader, if any, keeps its term",
				"reason", why, "err", err.Error())
		}
		return
	}
	if f.unreadable != "" {
		f.unreadable = ""
		f.logger.Info("The LeaderGroup can be read again: campaigning")
	}
	f.keepAsGroupSays(g)
}

// keepAsGroupSays gives the running elector what its group, as just read, asks of
// the Lease's writes: whether they keep the epoch, which depends on whether a
// manager serves the group (groups.KeepsEpoch), and the group label. An elector
// started before a manager first served its group keeps the epoch from its next
// acquisition on: the elector reads its config again after the floor.
func (f *groupFollower) keepAsGroupSays(g *v1alpha1.LeaderGroup) {
	cfg, want := f.el.Config(), groups.Election(g, "")
	if cfg.KeepEpoch == want.KeepEpoch && maps.Equal(cfg.Labels, want.Labels) {
		return
	}
	cfg.KeepEpoch, cfg.Labels = want.KeepEpoch, want.Labels
	if err := f.el.UpdateConfig(cfg); err != nil {
		f.logger.Error(err, "Following the group: keeping the epoch or not")
		return
	}
	if cfg.KeepEpoch {
		f.logger.Info("Keeping the epoch: from this term on, a deleted Lease waits until a manager records it")
	} else {
		f.logger.Info("Not keeping the epoch: the group's status does not show a manager serving it on this Lease")
	}
}

// budget is the child's stopping budget in this election.
func (t *target) budget(o *Options) supervisor.Budget {
	return supervisor.Budget{
		LeaseDuration: t.leaseDuration,
		RenewDeadline: t.renewDeadline,
		SafetyMargin:  o.SafetyMargin,
		GracePeriod:   o.GracePeriod,
	}
}

// groupName is the group's name, "" without one (for ELECTION_GROUP).
func (t *target) groupName() string { return t.group.Name }

// groupString is namespace/name, "" without a group.
func (t *target) groupString() string {
	if t.group.Name == "" {
		return ""
	}
	return t.group.String()
}
