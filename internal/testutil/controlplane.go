// Package testutil holds what the behaviour tests share: a real kube-apiserver and
// etcd (the pinned binaries the Makefile builds into bin/), and tools to run
// processes against them.
package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// ControlPlane is a kube-apiserver and etcd running as local processes on loopback.
type ControlPlane struct {
	env *envtest.Environment
	// Config authenticates as a member of system:masters.
	Config *rest.Config
	// Kubeconfig is a kubeconfig file for Config, for kubectl and for processes under test.
	Kubeconfig string
	dir        string
	gc         *exec.Cmd // kube-controller-manager, when started

	compMu sync.Mutex
	comps  map[Component]*component // found on first use (components.go)
}

// RepoRoot is the repository's top folder, found from this source file.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// AssetsDir returns the folder that holds etcd, kube-apiserver and kubectl:
// $KUBEBUILDER_ASSETS when set (make test sets it), else the one folder under bin/k8s.
func AssetsDir() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	matches, _ := filepath.Glob(filepath.Join(RepoRoot(), "bin", "k8s", "*"))
	if len(matches) != 1 {
		return "", fmt.Errorf("found %d control-plane folders under bin/k8s, want 1: run 'make controlplane' or set KUBEBUILDER_ASSETS", len(matches))
	}
	return matches[0], nil
}

// ControlPlaneOptions changes what StartControlPlaneWith sets up.
type ControlPlaneOptions struct {
	// NoCRDs starts the control plane without the project's CRDs, for tests where
	// something else installs them (the Helm chart).
	NoCRDs bool
}

// StartControlPlane starts etcd and kube-apiserver with the project's CRDs installed.
func StartControlPlane() (*ControlPlane, error) {
	return StartControlPlaneWith(ControlPlaneOptions{})
}

// StartControlPlaneWith starts etcd and kube-apiserver as opts say.
func StartControlPlaneWith(opts ControlPlaneOptions) (*ControlPlane, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	if !opts.NoCRDs {
		env.CRDDirectoryPaths = []string{filepath.Join(RepoRoot(), "config", "crd", "bases")}
		env.ErrorIfCRDPathMissing = true
	}
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

// Stop stops kube-apiserver and etcd (and the garbage collector) and removes their files.
func (c *ControlPlane) Stop() error {
	if c.gc != nil {
		_ = c.gc.Process.Kill()
		_ = c.gc.Wait()
	}
	c.stopRestarted()
	if c.dir != "" {
		_ = os.RemoveAll(c.dir)
	}
	return c.env.Stop()
}

func (c *ControlPlane) stopAfter(err error) error {
	_ = c.Stop()
	return err
}
