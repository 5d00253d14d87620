package app

import (
	"fmt"

	"k8s.io/client-go/rest"

	"github.com/election-manager/election-manager/internal/clientconfig"
	"github.com/election-manager/election-manager/internal/election"
)

// Complete fills in what depends on the environment: the identity, the REST config
// and the namespace.
func (o *Options) Complete() (*rest.Config, error) {
	var err error
	if o.ID == "" {
		if o.ID, err = clientconfig.UniqueID(getenv("POD_NAME")); err != nil {
			return nil, err
		}
	}
	cfg, loader, err := clientconfig.Load(o.Kubeconfig)
	if err != nil {
		return nil, err
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
	cfg = election.ClientConfig(cfg)
	cfg.UserAgent = "election-manager-elector"
	return cfg, nil
}
