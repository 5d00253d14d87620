package app

import (
	"fmt"
	"os"
	"strings"

	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Complete fills in what depends on the environment: the identity, the REST config
// and the namespace.
func (o *Options) Complete() (*rest.Config, error) {
	if o.ID == "" {
		base := getenv("POD_NAME")
		if base == "" {
			host, err := os.Hostname()
			if err != nil {
				return nil, fmt.Errorf("--id is empty and the hostname is unknown: %w", err)
			}
			base = strings.ToLower(host)
		}
		// Two processes on one host, or a restarted container in one pod, must never
		// share an identity: each would take the other's renewals for its own.
		o.ID = base + "-" + utilrand.String(5)
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.Kubeconfig
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := loader.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the client configuration (--kubeconfig %q): %w", o.Kubeconfig, err)
	}
	if o.Namespace == "" {
		if o.Namespace = getenv("POD_NAMESPACE"); o.Namespace == "" {
			// In cluster: the service account's namespace; from a kubeconfig: the
			// current context's, else "default".
			if o.Namespace, _, err = loader.Namespace(); err != nil {
				return nil, fmt.Errorf("resolving --namespace: %w", err)
			}
		}
	}
	if o.LockNamespace == "" {
		o.LockNamespace = o.Namespace
	}
	// An elector's renewals must not wait behind a client-side rate limit.
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = -1, 0
	cfg.UserAgent = "election-manager-elector"
	return cfg, nil
}
