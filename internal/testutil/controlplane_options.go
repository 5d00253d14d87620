package testutil

import (
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// ControlPlaneOptions changes what StartControlPlaneWith sets up.
type ControlPlaneOptions struct {
	// NoCRDs starts the control plane without the project's CRDs, for tests where
	// something else installs them (the Helm chart).
	NoCRDs bool
}

// StartControlPlaneWith is StartControlPlane with options; the zero value is the same
// as StartControlPlane.
func StartControlPlaneWith(opts ControlPlaneOptions) (*ControlPlane, error) {
	if !opts.NoCRDs {
		return StartControlPlane()
	}
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the control plane from %s: %w", assets, err)
	}
	cp := &ControlPlane{env: env, Config: cfg}
	if cp.dir, err = os.MkdirTemp("", "election-manager-cp-"); err != nil {
		return nil, cp.stopAfter(err)
	}
	cp.Kubeconfig = filepath.Join(cp.dir, "kubeconfig")
	if err := os.WriteFile(cp.Kubeconfig, env.KubeConfig, 0o600); err != nil {
		return nil, cp.stopAfter(err)
	}
	return cp, nil
}
