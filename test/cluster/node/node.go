// Package node runs a real one-node Kubernetes cluster on this machine without Docker:
// etcd, kube-apiserver, kube-controller-manager and kube-scheduler as processes,
// containerd and runc from the distribution, a kubelet and kube-proxy, a CNI bridge of
// its own, and images built here and imported. The recipe and the settings that matter
// are in shared/REAL-CLUSTER.md. Every address is loopback or on the cluster's own
// bridge; Down stops what Up started and removes what it made, so a rerun starts clean.
package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// The cluster's network. The bridge and the ranges are its own, so that nothing
// else on the machine is touched.
const (
	NodeName = "election-manager-node"
	// Bridge is the pods' network; its address is the node's and the API server's.
	Bridge      = "emcluster0"
	Gateway     = "10.213.0.1"
	PodCIDR     = "10.213.0.0/16"
	ServiceCIDR = "10.214.0.0/16"
	// KubernetesServiceIP is the first address of ServiceCIDR: the kubernetes Service.
	KubernetesServiceIP = "10.214.0.1"
	APIServerPort       = 6443
	// NodeMonitorGracePeriod is how long the node may go unheard before it is NotReady.
	NodeMonitorGracePeriod = 20 * time.Second
	// RunDir holds the sockets; a socket's path must stay short, so not under Dir.
	RunDir = "/run/election-manager-cluster"
)

// Config says where the cluster lives and what it runs.
type Config struct {
	// Dir holds the cluster's state: certificates, kubeconfigs, etcd's data, logs.
	Dir string
	// Bin holds kube-apiserver, kubelet and the other Kubernetes binaries.
	Bin string
	// Repo is the repository's root, for building the images.
	Repo string
	// Log receives one line per step.
	Log func(format string, args ...any)
}

// Cluster is a running one-node cluster.
type Cluster struct {
	Config
	// Kubeconfig is an admin kubeconfig for the cluster.
	Kubeconfig string
	// Images are the images imported into the node, by name.
	Images Images
}

// Up starts the cluster and waits until its node is Ready and its images are imported.
// On error it tears down what it started.
func Up(ctx context.Context, cfg Config) (c *Cluster, err error) {
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	if err := preflight(cfg); err != nil {
		return nil, err
	}
	if leftover(cfg.Dir) {
		return nil, fmt.Errorf("a cluster is already running or was left behind in %s: remove it with `make cluster-down`", cfg.Dir)
	}
	c = &Cluster{Config: cfg, Kubeconfig: filepath.Join(cfg.Dir, "admin.kubeconfig")}
	defer func() {
		if err != nil {
			if derr := Down(cfg); derr != nil {
				cfg.Log("tearing down after the failure: %v", derr)
			}
			c = nil
		}
	}()
	if err := os.RemoveAll(cfg.Dir); err != nil {
		return nil, err
	}
	for _, d := range []string{cfg.Dir, RunDir, c.logDir(), c.pidDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"certificates", c.writePKI},
		{"bridge", c.createBridge},
		{"etcd", c.startEtcd},
		{"kube-apiserver", c.startAPIServer},
		{"kube-controller-manager and kube-scheduler", c.startControllers},
		{"containerd", c.startContainerd},
		{"images", c.importImages},
		{"kubelet", c.startKubelet},
		{"kube-proxy", c.startProxy},
		{"node Ready", c.waitNodeReady},
	}
	for _, s := range steps {
		start := time.Now()
		if err := s.run(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		cfg.Log("%-44s %5.1fs", s.name, time.Since(start).Seconds())
	}
	return c, nil
}

// Down stops every process a cluster in cfg.Dir started and removes the pods'
// containers, the bridge, kube-proxy's iptables rules and the mounts. It is safe to
// call for a cluster that is half up, or not there at all.
func Down(cfg Config) error {
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	c := &Cluster{Config: cfg}
	var errs []error
	// The kubelet first, so that it restarts nothing while the rest goes.
	for _, name := range []string{"kubelet", "kube-proxy", "kube-scheduler", "kube-controller-manager"} {
		errs = append(errs, c.stop(name))
	}
	errs = append(errs, c.removeContainers())
	for _, name := range []string{"containerd", "kube-apiserver", "etcd"} {
		errs = append(errs, c.stop(name))
	}
	errs = append(errs, c.cleanupProxyRules(), cleanupKubeletRules(), c.unmountAll(), c.deleteBridge())
	errs = append(errs, os.RemoveAll(RunDir))
	return errors.Join(errs...)
}

func (c *Cluster) logDir() string { return filepath.Join(c.Dir, "logs") }
func (c *Cluster) pidDir() string { return filepath.Join(c.Dir, "pids") }
func (c *Cluster) path(elem ...string) string {
	return filepath.Join(append([]string{c.Dir}, elem...)...)
}
