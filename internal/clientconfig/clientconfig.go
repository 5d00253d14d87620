// Package clientconfig is what the binaries share to find their API server and name
// themselves: client-go's standard kubeconfig loading, and identities unique per process.
package clientconfig

import (
	"fmt"
	"os"
	"strings"

	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Load reads the kubeconfig at path, else $KUBECONFIG or ~/.kube/config, else the
// in-cluster config. The returned ClientConfig answers Namespace(): in cluster
// POD_NAMESPACE or the service account's, from a kubeconfig the current context's,
// else "default".
func Load(path string) (*rest.Config, clientcmd.ClientConfig, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	cfg, err := loader.ClientConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("loading the client configuration (--kubeconfig %q): %w", path, err)
	}
	return cfg, loader, nil
}

// UniqueID is base (the hostname when empty) plus a random suffix. Two processes on
// one host, or a restarted container in one pod, must never share an identity: each
// would take the other's renewals for its own.
func UniqueID(base string) (string, error) {
	if base == "" {
		host, err := os.Hostname()
		if err != nil {
			return "", fmt.Errorf("--id is empty and the hostname is unknown: %w", err)
		}
		base = host
	}
	return strings.ToLower(base) + "-" + utilrand.String(5), nil
}
