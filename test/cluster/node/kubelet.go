package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// kubeletConfig holds the settings this machine needs (shared/REAL-CLUSTER.md): cgroup
// v1 with cgroupfs and no QoS hierarchy, no swap check, no eviction, never a garbage
// collection of the imported images (there is no registry to pull them back from).
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
resolvConf: ""
evictionHard: {}
imageGCHighThresholdPercent: 100
address: %q
readOnlyPort: 0
healthzPort: 0
containerRuntimeEndpoint: unix://%s
tlsCertFile: %q
tlsPrivateKeyFile: %q
podLogsDir: %q
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %q}
authorization:
  mode: Webhook
`

func (c *Cluster) writeKubeletConfig() error {
	cfg := fmt.Sprintf(kubeletConfig, Gateway, containerdSocket,
		c.path("kubelet-serving.crt"), c.path("kubelet-serving.key"), c.path("pod-logs"), c.path("ca.crt"))
	return os.WriteFile(c.path("kubelet.yaml"), []byte(cfg), 0o644)
}

func (c *Cluster) startKubelet(context.Context) error {
	if err := c.writeKubeletConfig(); err != nil {
		return err
	}
	return c.StartKubelet()
}

// StartKubelet starts the node's kubelet (again, after StopKubelet).
func (c *Cluster) StartKubelet() error {
	return c.start("kubelet", filepath.Join(c.Bin, "kubelet"),
		"--config", c.path("kubelet.yaml"),
		"--kubeconfig", c.path("kubelet.kubeconfig"),
		"--root-dir", c.path("kubelet"),
		"--hostname-override", NodeName,
		"--node-ip", Gateway)
}

// StopKubelet stops the node's kubelet: its pods go on running, unsupervised, and the
// node goes NotReady after the node-monitor grace period, as when a node is lost.
func (c *Cluster) StopKubelet() error { return c.stop("kubelet") }

// startProxy runs kube-proxy in iptables mode without touching the machine's conntrack
// settings, serving only on loopback.
func (c *Cluster) startProxy(ctx context.Context) error {
	healthz, err := freePort()
	if err != nil {
		return err
	}
	metrics, err := freePort()
	if err != nil {
		return err
	}
	if err := c.start("kube-proxy", filepath.Join(c.Bin, "kube-proxy"),
		"--kubeconfig", c.path("proxy.kubeconfig"),
		"--proxy-mode", "iptables",
		"--conntrack-max-per-core", "0",
		"--cluster-cidr", PodCIDR,
		"--hostname-override", NodeName,
		"--bind-address", "127.0.0.1",
		"--healthz-bind-address", fmt.Sprintf("127.0.0.1:%d", healthz),
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", metrics),
		"--nodeport-addresses", Gateway+"/32"); err != nil {
		return err
	}
	// Pods reach the API server through the kubernetes Service: wait for its rule.
	return c.poll(ctx, "kube-proxy's rule for the kubernetes Service", "kube-proxy", time.Minute, func(context.Context) (bool, error) {
		out, err := exec.Command("iptables", "-t", "nat", "-S", "KUBE-SERVICES").CombinedOutput()
		return err == nil && strings.Contains(string(out), KubernetesServiceIP+"/32"), nil
	})
}

func (c *Cluster) waitNodeReady(ctx context.Context) error {
	return c.poll(ctx, "the node Ready", "kubelet", 2*time.Minute, func(ctx context.Context) (bool, error) {
		cs, err := c.Clientset()
		if err != nil {
			return false, err
		}
		n, err := cs.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status == corev1.ConditionTrue, fmt.Errorf("node %s: %s", cond.Reason, cond.Message)
			}
		}
		return false, nil
	})
}
