package app

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/clientconfig"
)

// crdGrace is how long a LeaderGroup API that is not served counts as not served
// yet: kube-apiserver serves a custom resource's discovery a moment after it
// starts, so a manager restarted with it must wait, not exit.
const crdGrace = 30 * time.Second

// waitForTheAPI returns once the API server serves the LeaderGroup API, which the
// controller needs before it can watch anything: it waits while the server cannot
// be reached, and for crdGrace while it does not serve that API, then says the CRD
// is missing.
func waitForTheAPI(ctx context.Context, logger logr.Logger, cfg *rest.Config) error {
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return fmt.Errorf("creating the discovery client: %w", err)
	}
	gv := v1alpha1.GroupVersion
	var missingSince time.Time
	return clientconfig.WithRetry(ctx, logger, cfg.Host, func(ctx context.Context) error {
		// No retries inside client-go: it would retry a reset connection for
		// seconds before the log could say why the manager waits.
		err := disco.RESTClient().Get().AbsPath("/apis", gv.Group, gv.Version).MaxRetries(0).Do(ctx).Error()
		if !apierrors.IsNotFound(err) {
			return err
		}
		if missingSince.IsZero() {
			missingSince = time.Now()
		}
		if time.Since(missingSince) < crdGrace {
			return clientconfig.NotYet(fmt.Errorf("the LeaderGroup API (%s): %w", gv, err))
		}
		return fmt.Errorf("the LeaderGroup API (%s) is not installed in this cluster: install election-manager's CRD (config/crd, or the Helm chart): %w", gv, err)
	})
}
