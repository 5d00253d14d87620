// Package app builds and runs the election-manager from its command line.
package app

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/election-manager/election-manager/internal/clientconfig"
	"github.com/election-manager/election-manager/internal/timing"
)

// Options is the manager's command line. Scripts and the Helm chart rely on these
// flag names: change them only with a deprecation.
type Options struct {
	Kubeconfig             string
	ID                     string
	MetricsBindAddress     string
	SecureMetrics          bool
	HealthProbeBindAddress string
	// PprofBindAddress serves net/http/pprof; "0" (the default) disables it.
	PprofBindAddress string
	Namespaces       []string
	GroupSelector    string
	// ExternalLeaseNamespaces are the other namespaces External groups may name.
	ExternalLeaseNamespaces []string
	// PodsSource turns on the Pods candidate source, which watches and relabels pods.
	PodsSource bool

	// Lock is the manager's own lock: the instance holding it writes status.
	Lock LockOptions

	Zap zap.Options
}

// LockOptions configures the manager's own Lease.
type LockOptions struct {
	Name          string
	Namespace     string
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

// NewOptions returns Options with their defaults.
func NewOptions() *Options {
	return &Options{
		MetricsBindAddress:     ":8443",
		SecureMetrics:          true,
		HealthProbeBindAddress: ":8081",
		PprofBindAddress:       "0",
		Lock: LockOptions{
			Name:          "election-manager",
			LeaseDuration: 15 * time.Second,
			RenewDeadline: 10 * time.Second,
			RetryPeriod:   2 * time.Second,
		},
		// Leadership changes within a second: logs need the sub-second time to be read.
		Zap: zap.Options{Development: false, TimeEncoder: zapcore.RFC3339NanoTimeEncoder},
	}
}

// BindFlags registers every option on fs.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig,
		"Path to a kubeconfig. Empty: $KUBECONFIG, ~/.kube/config, or the in-cluster config.")
	fs.StringVar(&o.ID, "id", o.ID,
		"Identity of this instance in elections. Default: hostname plus a random suffix, unique per process.")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", o.MetricsBindAddress,
		"Address the metrics endpoint binds to. 0 disables it.")
	fs.BoolVar(&o.SecureMetrics, "metrics-secure", o.SecureMetrics,
		"Serve metrics over HTTPS behind Kubernetes authentication and authorization.")
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", o.HealthProbeBindAddress,
		"Address the health and readiness probes bind to. 0 disables them.")
	fs.StringVar(&o.PprofBindAddress, "pprof-bind-address", o.PprofBindAddress,
		"Address net/http/pprof binds to, unauthenticated: loopback only (e.g. 127.0.0.1:6060). 0 disables it.")
	fs.Func("namespaces", "Comma-separated namespaces whose LeaderGroups this instance serves. Empty: all.",
		func(s string) error { o.Namespaces = splitList(s); return nil })
	fs.StringVar(&o.GroupSelector, "group-selector", o.GroupSelector,
		"Label selector: this instance serves only the LeaderGroups it matches. Empty: all.")
	fs.BoolVar(&o.PodsSource, "pods-source", o.PodsSource,
		"Serve Pods-source groups: watch pods and label the leader (needs pod get/list/watch/patch).")
	fs.Func("external-lease-namespaces", "Comma-separated namespaces, other than their own, whose Leases External groups may observe. Empty: none.",
		func(s string) error { o.ExternalLeaseNamespaces = splitList(s); return nil })
	fs.StringVar(&o.Lock.Name, "lock-name", o.Lock.Name,
		"Name of the Lease that decides which instance writes status.")
	fs.StringVar(&o.Lock.Namespace, "lock-namespace", o.Lock.Namespace,
		"Namespace of that Lease. Default: the pod's namespace in cluster, else the kubeconfig context's, else default.")
	fs.DurationVar(&o.Lock.LeaseDuration, "lock-lease-duration", o.Lock.LeaseDuration,
		"Lease duration of the manager's own lock: whole seconds, more than renew deadline + retry period.")
	fs.DurationVar(&o.Lock.RenewDeadline, "lock-renew-deadline", o.Lock.RenewDeadline,
		"Renew deadline of the manager's own lock: more than 1.2 × retry period.")
	fs.DurationVar(&o.Lock.RetryPeriod, "lock-retry-period", o.Lock.RetryPeriod,
		"Retry period of the manager's own lock.")
	o.Zap.BindFlags(fs)
}

// Validate checks the options; every error names its flag.
func (o *Options) Validate() error {
	var errs []error
	if o.ID != "" {
		if msgs := validation.IsDNS1123Subdomain(o.ID); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("--id %q: %s", o.ID, strings.Join(msgs, "; ")))
		}
	}
	for _, ns := range o.Namespaces {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("--namespaces: %q: %s", ns, strings.Join(msgs, "; ")))
		}
	}
	for _, ns := range o.ExternalLeaseNamespaces {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("--external-lease-namespaces: %q: %s", ns, strings.Join(msgs, "; ")))
		} else if ns == "kube-node-lease" {
			errs = append(errs, errors.New("--external-lease-namespaces: kube-node-lease holds node heartbeats, not elections"))
		}
	}
	if _, err := labels.Parse(o.GroupSelector); err != nil {
		errs = append(errs, fmt.Errorf("--group-selector: %w", err))
	}
	if msgs := validation.IsDNS1123Subdomain(o.Lock.Name); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("--lock-name %q: %s", o.Lock.Name, strings.Join(msgs, "; ")))
	}
	if o.Lock.Namespace != "" {
		if msgs := validation.IsDNS1123Label(o.Lock.Namespace); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("--lock-namespace %q: %s", o.Lock.Namespace, strings.Join(msgs, "; ")))
		}
	}
	if o.ID != "" && len(o.Lock.Name)+1+len(o.ID) > validation.DNS1123SubdomainMaxLength {
		errs = append(errs, fmt.Errorf("--id %q: too long for its presence Lease name %s-<id>", o.ID, o.Lock.Name))
	}
	errs = append(errs, o.Lock.validateTimings()...)
	return errors.Join(errs...)
}

// validateTimings applies the election timing rules to the lock's flags.
func (l LockOptions) validateTimings() []error {
	t := timing.Timings{LeaseDuration: l.LeaseDuration, RenewDeadline: l.RenewDeadline, RetryPeriod: l.RetryPeriod}
	if err := t.Validate(timing.Names{LeaseDuration: "--lock-lease-duration", RenewDeadline: "--lock-renew-deadline", RetryPeriod: "--lock-retry-period"}); err != nil {
		return []error{err}
	}
	return nil
}

// Complete fills in what depends on the environment: the identity, and the REST
// config and lock namespace from the kubeconfig (or the in-cluster config).
func (o *Options) Complete() (*rest.Config, error) {
	var err error
	if o.ID == "" {
		if o.ID, err = clientconfig.UniqueID(""); err != nil {
			return nil, err
		}
	}
	cfg, loader, err := clientconfig.Load(o.Kubeconfig)
	if err != nil {
		return nil, err
	}
	if o.Lock.Namespace == "" {
		// In cluster this reads POD_NAMESPACE or the service account's namespace;
		// from a kubeconfig, the current context's namespace, else "default".
		if o.Lock.Namespace, _, err = loader.Namespace(); err != nil {
			return nil, fmt.Errorf("resolving --lock-namespace: %w", err)
		}
	}
	return cfg, nil
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
