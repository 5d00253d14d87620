// Package app is the elector command: it joins one election, from a LeaderGroup or
// from flags, runs a child command only while it leads, and serves /healthz and
// /leader.
package app

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/election-manager/election-manager/internal/timing"
)

// Options is the elector's command line.
type Options struct {
	Kubeconfig string
	// Group names a LeaderGroup of source External; Namespace is its namespace.
	Group     string
	Namespace string
	ID        string

	// Without a group: the lock and its timings.
	LockName      string
	LockNamespace string
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration

	GracePeriod  time.Duration
	SafetyMargin time.Duration
	RestartChild bool
	HTTPAddr     string

	// The child's health check, while it leads: a command (run by sh -c) or an
	// HTTP URL, every HealthPeriod, each given HealthTimeout. After HealthFailures
	// failures in a row the elector stops the child, releases the Lease and does
	// not campaign for StepDownBackoff (0: twice the lease duration).
	HealthCommand   string
	HealthURL       string
	HealthPeriod    time.Duration
	HealthTimeout   time.Duration
	HealthFailures  int
	StepDownBackoff time.Duration

	// Command is the child, from the arguments after the flags (after "--").
	Command []string

	Zap zap.Options

	set map[string]bool // flags given on the command line
}

// Flags that describe the election itself: a LeaderGroup declares them.
var lockFlags = []string{"lock-name", "lock-namespace", "lease-duration", "renew-deadline", "retry-period"}

// NewOptions returns Options with their defaults: controller-runtime's timings.
func NewOptions() *Options {
	return &Options{
		LeaseDuration:  15 * time.Second,
		RenewDeadline:  10 * time.Second,
		RetryPeriod:    2 * time.Second,
		HealthPeriod:   5 * time.Second,
		HealthFailures: 3,
		// Leadership changes within a second: logs need the sub-second time to be read.
		Zap: zap.Options{TimeEncoder: zapcore.RFC3339NanoTimeEncoder},
		set: map[string]bool{},
	}
}

// BindFlags registers every option on fs.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig,
		"Path to a kubeconfig. Empty: $KUBECONFIG, ~/.kube/config, or the in-cluster config.")
	fs.StringVar(&o.Group, "group", o.Group,
		"LeaderGroup to join (source External): it names the Lease and its timings.")
	fs.StringVar(&o.Namespace, "namespace", o.Namespace,
		"Namespace of the LeaderGroup, and of the Lease without one. Default: $POD_NAMESPACE, else the kubeconfig context's, else default.")
	fs.StringVar(&o.ID, "id", o.ID,
		"Identity in the election. Default: $POD_NAME or the hostname, plus a random suffix: unique per process.")
	fs.StringVar(&o.LockName, "lock-name", o.LockName,
		"Without --group: name of the Lease to elect on.")
	fs.StringVar(&o.LockNamespace, "lock-namespace", o.LockNamespace,
		"Without --group: namespace of the Lease. Default: --namespace's default.")
	fs.DurationVar(&o.LeaseDuration, "lease-duration", o.LeaseDuration,
		"Without --group: how long followers wait after the last renewal they saw before taking over. Whole seconds.")
	fs.DurationVar(&o.RenewDeadline, "renew-deadline", o.RenewDeadline,
		"Without --group: how long the leader keeps leading after its last successful renewal.")
	fs.DurationVar(&o.RetryPeriod, "retry-period", o.RetryPeriod,
		"Without --group: interval between renewals and between attempts.")
	fs.DurationVar(&o.GracePeriod, "grace-period", o.GracePeriod,
		"Longest wait from the child's SIGTERM to its SIGKILL. 0: the most the timings allow, lease duration - renew deadline - safety margin.")
	fs.DurationVar(&o.SafetyMargin, "safety-margin", o.SafetyMargin,
		"How long before the earliest possible takeover the child must be dead. 0: 500ms + 1% of the lease duration.")
	fs.BoolVar(&o.RestartChild, "restart-child", o.RestartChild,
		"Restart the child (with backoff) when it exits while this elector leads, instead of releasing and exiting with its code.")
	fs.StringVar(&o.HTTPAddr, "http-addr", o.HTTPAddr,
		"Address to serve /healthz and /leader on, e.g. 127.0.0.1:4040. Empty: no HTTP server.")
	fs.StringVar(&o.HealthCommand, "health-command", o.HealthCommand,
		"Health check of the child while leading: a shell command (sh -c) that exits 0 when the child works. It gets the child's ELECTION_* variables.")
	fs.StringVar(&o.HealthURL, "health-url", o.HealthURL,
		"Health check of the child while leading: an http(s) URL that answers 2xx or 3xx when the child works.")
	fs.DurationVar(&o.HealthPeriod, "health-period", o.HealthPeriod,
		"Interval between health checks; the first comes one interval after the child starts.")
	fs.DurationVar(&o.HealthTimeout, "health-timeout", o.HealthTimeout,
		"How long one health check may take before it counts as a failure; at most --health-period. 0: 1s, or --health-period if shorter.")
	fs.IntVar(&o.HealthFailures, "health-failures", o.HealthFailures,
		"Consecutive failed health checks after which the elector stops the child, releases the Lease and steps down.")
	fs.DurationVar(&o.StepDownBackoff, "step-down-backoff", o.StepDownBackoff,
		"After stepping down, how long not to campaign, so that another candidate keeps the Lease. 0: twice the lease duration.")
	o.Zap.BindFlags(fs)
}

// healthFlags configure the health check; they need --health-command or --health-url.
var healthFlags = []string{"health-period", "health-timeout", "health-failures", "step-down-backoff"}

// healthTimeout is --health-timeout, or its default: 1s, at most the period.
func (o *Options) healthTimeout() time.Duration {
	if o.HealthTimeout > 0 {
		return o.HealthTimeout
	}
	return min(time.Second, o.HealthPeriod)
}

// stepDownBackoff is --step-down-backoff, or its default: twice leaseDuration.
func (o *Options) stepDownBackoff(leaseDuration time.Duration) time.Duration {
	if o.StepDownBackoff > 0 {
		return o.StepDownBackoff
	}
	return 2 * leaseDuration
}

// HealthCheck tells whether a health check is configured.
func (o *Options) HealthCheck() bool { return o.HealthCommand != "" || o.HealthURL != "" }

// Parse parses args into o: the flags, then the command after them.
func (o *Options) Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	o.Command = fs.Args()
	return nil
}

// Validate checks the options as given; every error names its flag.
func (o *Options) Validate() error {
	var errs []error
	switch {
	case o.Group == "" && o.LockName == "":
		errs = append(errs, errors.New("--group or --lock-name is required: join a LeaderGroup, or name the Lease to elect on"))
	case o.Group != "":
		for _, name := range lockFlags {
			if o.set[name] {
				errs = append(errs, fmt.Errorf("--%s cannot be used with --group: LeaderGroup %s declares the Lease and its timings", name, o.Group))
			}
		}
		errs = append(errs, dnsName("--group", o.Group, validation.IsDNS1123Subdomain)...)
	default:
		errs = append(errs, dnsName("--lock-name", o.LockName, validation.IsDNS1123Subdomain)...)
		errs = append(errs, dnsName("--lock-namespace", o.LockNamespace, validation.IsDNS1123Label)...)
		errs = append(errs, flagTimings(o.LeaseDuration, o.RenewDeadline, o.RetryPeriod)...)
	}
	errs = append(errs, dnsName("--namespace", o.Namespace, validation.IsDNS1123Label)...)
	if o.set["id"] && strings.TrimSpace(o.ID) == "" {
		errs = append(errs, errors.New("--id: must not be empty"))
	}
	if len(o.Command) == 0 {
		for _, name := range []string{"grace-period", "safety-margin", "restart-child"} {
			if o.set[name] {
				errs = append(errs, fmt.Errorf("--%s needs a command to supervise (elector [flags] -- COMMAND ARGS...)", name))
			}
		}
	} else if _, err := exec.LookPath(o.Command[0]); err != nil {
		errs = append(errs, fmt.Errorf("command %q: %w", o.Command[0], err))
	}
	return errors.Join(append(errs, o.validateHealth()...)...)
}

// validateHealth checks the health check's flags.
func (o *Options) validateHealth() []error {
	var errs []error
	if !o.HealthCheck() {
		for _, name := range healthFlags {
			if o.set[name] {
				errs = append(errs, fmt.Errorf("--%s needs --health-command or --health-url", name))
			}
		}
		return errs
	}
	if o.HealthCommand != "" && o.HealthURL != "" {
		errs = append(errs, errors.New("--health-command and --health-url cannot be used together: pick one check"))
	}
	if len(o.Command) == 0 {
		errs = append(errs, errors.New("--health-command and --health-url check a child: they need a command (elector [flags] -- COMMAND ARGS...)"))
	}
	if o.HealthURL != "" {
		if u, err := url.Parse(o.HealthURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("--health-url %q: must be an absolute http or https URL", o.HealthURL))
		}
	}
	if o.HealthPeriod <= 0 {
		errs = append(errs, fmt.Errorf("--health-period %s: must be positive", o.HealthPeriod))
	}
	if o.HealthTimeout < 0 || o.HealthTimeout > o.HealthPeriod {
		errs = append(errs, fmt.Errorf("--health-timeout %s: must be at most --health-period (%s), and not negative", o.HealthTimeout, o.HealthPeriod))
	}
	if o.HealthFailures < 1 {
		errs = append(errs, fmt.Errorf("--health-failures %d: must be at least 1", o.HealthFailures))
	}
	if o.StepDownBackoff < 0 {
		errs = append(errs, fmt.Errorf("--step-down-backoff %s: must not be negative (0: twice the lease duration)", o.StepDownBackoff))
	}
	return errs
}

// flagTimings applies the election timing rules to the timing flags.
func flagTimings(ld, rd, rp time.Duration) []error {
	t := timing.Timings{LeaseDuration: ld, RenewDeadline: rd, RetryPeriod: rp}
	if err := t.Validate(timing.Names{LeaseDuration: "--lease-duration", RenewDeadline: "--renew-deadline", RetryPeriod: "--retry-period"}); err != nil {
		return []error{err}
	}
	return nil
}

func dnsName(flagName, value string, check func(string) []string) []error {
	if value == "" {
		return nil
	}
	if msgs := check(value); len(msgs) > 0 {
		return []error{fmt.Errorf("%s %q: %s", flagName, value, strings.Join(msgs, "; "))}
	}
	return nil
}

// Set tells whether the flag was given on the command line.
func (o *Options) Set(name string) bool { return o.set[name] }

// getenv is os.Getenv; tests replace it.
var getenv = os.Getenv
