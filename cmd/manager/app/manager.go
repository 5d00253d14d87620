package app

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	coordinationv1alpha1 "github.com/election-manager/election-manager/api/v1alpha1"
)

// The metrics endpoint authenticates and authorizes its callers through the API server.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// NewScheme returns the scheme with every type the manager reads or writes.
func NewScheme() (*runtime.Scheme, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := coordinationv1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return scheme, nil
}

// NewManager builds the controller-runtime manager from validated, completed options.
// Leader election of controller-runtime stays off: the manager's own lock only
// decides who writes status, and losing it must never stop the process.
func NewManager(cfg *rest.Config, o *Options) (ctrl.Manager, error) {
	scheme, err := NewScheme()
	if err != nil {
		return nil, fmt.Errorf("building the scheme: %w", err)
	}
	metrics := metricsserver.Options{BindAddress: o.MetricsBindAddress, SecureServing: o.SecureMetrics}
	if o.SecureMetrics {
		metrics.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	// Status is written per transition, never per renewal; a burst of transitions
	// (an instance leaving hands over all its groups) should not queue behind
	// controller-runtime's default of 20 requests a second.
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 100, 200
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metrics,
		HealthProbeBindAddress: o.HealthProbeBindAddress,
		PprofBindAddress:       o.PprofBindAddress,
		Cache:                  cacheOptions(o),
	})
	if err != nil {
		return nil, fmt.Errorf("creating the manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("adding the health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, fmt.Errorf("adding the readiness check: %w", err)
	}
	return mgr, nil
}

// cacheOptions restricts what this instance sees to the groups it serves, so that
// installations can split groups by namespace and by label.
func cacheOptions(o *Options) cache.Options {
	var opts cache.Options
	if len(o.Namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range o.Namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	if o.GroupSelector != "" {
		selector, _ := labels.Parse(o.GroupSelector) // Validate has parsed it.
		opts.ByObject = map[client.Object]cache.ByObject{
			&coordinationv1alpha1.LeaderGroup{}: {Label: selector},
		}
	}
	return opts
}

// Run validates the options, builds the manager and runs it until ctx ends.
func Run(ctx context.Context, o *Options) error {
	if err := o.Validate(); err != nil {
		return err
	}
	cfg, err := o.Complete()
	if err != nil {
		return err
	}
	if err := waitForTheAPI(ctx, ctrl.LoggerFrom(ctx), cfg); err != nil {
		return err
	}
	mgr, err := NewManager(cfg, o)
	if err != nil {
		return err
	}
	if err := setUpElections(ctx, mgr, o); err != nil {
		return err
	}
	ctrl.LoggerFrom(ctx).Info("Starting manager", "id", o.ID, "lock", o.Lock.Namespace+"/"+o.Lock.Name,
		"namespaces", o.Namespaces, "groupSelector", o.GroupSelector)
	return mgr.Start(ctx)
}
