package node

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// etcdPorts are loopback ports picked when etcd starts, kept for a restart.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *Cluster) etcdURL() string {
	port, _ := readState(c.path("etcd.port"))
	return "http://127.0.0.1:" + strconv.Itoa(port)
}

func (c *Cluster) startEtcd(ctx context.Context) error {
	client, err := freePort()
	if err != nil {
		return err
	}
	peer, err := freePort()
	if err != nil {
		return err
	}
	if err := writeState(c.path("etcd.port"), client); err != nil {
		return err
	}
	url := c.etcdURL()
	if err := c.start("etcd", filepath.Join(c.Bin, "etcd"),
		"--data-dir", c.path("etcd"),
		"--listen-client-urls", url, "--advertise-client-urls", url,
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", peer),
		"--unsafe-no-fsync"); err != nil {
		return err
	}
	return c.poll(ctx, "etcd healthy", "etcd", 30*time.Second, func(ctx context.Context) (bool, error) {
		resp, err := http.Get(url + "/health")
		if err != nil {
			return false, err
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// startAPIServer serves on the bridge's address only: the node and the pods reach it
// there (the pods through the kubernetes Service), and nothing outside the machine can.
func (c *Cluster) startAPIServer(ctx context.Context) error {
	if err := c.start("kube-apiserver", filepath.Join(c.Bin, "kube-apiserver"),
		"--etcd-servers", c.etcdURL(),
		"--bind-address", Gateway, "--advertise-address", Gateway,
		"--secure-port", strconv.Itoa(APIServerPort),
		"--tls-cert-file", c.path("apiserver.crt"), "--tls-private-key-file", c.path("apiserver.key"),
		"--client-ca-file", c.path("ca.crt"),
		"--kubelet-client-certificate", c.path("apiserver-kubelet-client.crt"),
		"--kubelet-client-key", c.path("apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority", c.path("ca.crt"),
		"--kubelet-preferred-address-types", "InternalIP",
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", c.path("sa.pub"),
		"--service-account-signing-key-file", c.path("sa.key"),
		"--service-cluster-ip-range", ServiceCIDR,
		"--authorization-mode", "Node,RBAC",
		"--enable-admission-plugins", "NodeRestriction",
		"--allow-privileged=true",
		// Through the kubernetes Service the pods reach the API server as its Endpoints say.
		"--endpoint-reconciler-type", "lease"); err != nil {
		return err
	}
	return c.poll(ctx, "kube-apiserver ready", "kube-apiserver", 90*time.Second, func(ctx context.Context) (bool, error) {
		cs, err := c.Clientset()
		if err != nil {
			return false, err
		}
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok", err
	})
}

// startControllers starts every controller of kube-controller-manager (Deployments,
// ReplicaSets, EndpointSlices, ServiceAccounts, the root CA publisher, the node
// lifecycle, garbage collection) and the scheduler. Neither serves: their ports would
// be taken by another cluster's.
func (c *Cluster) startControllers(ctx context.Context) error {
	if err := c.start("kube-controller-manager", filepath.Join(c.Bin, "kube-controller-manager"),
		"--kubeconfig", c.path("controller-manager.kubeconfig"),
		"--authentication-kubeconfig", c.path("controller-manager.kubeconfig"),
		"--authorization-kubeconfig", c.path("controller-manager.kubeconfig"),
		"--controllers", "*",
		"--use-service-account-credentials",
		"--root-ca-file", c.path("ca.crt"),
		"--service-account-private-key-file", c.path("sa.key"),
		"--cluster-signing-cert-file", c.path("ca.crt"),
		"--cluster-signing-key-file", c.path("ca.key"),
		"--service-cluster-ip-range", ServiceCIDR,
		// A lost node shows in 20s rather than 50s, so that a test of it takes less.
		"--node-monitor-grace-period", NodeMonitorGracePeriod.String(),
		"--leader-elect=false",
		"--bind-address", "127.0.0.1", "--secure-port", "0"); err != nil {
		return err
	}
	if err := c.start("kube-scheduler", filepath.Join(c.Bin, "kube-scheduler"),
		"--kubeconfig", c.path("scheduler.kubeconfig"),
		"--authentication-kubeconfig", c.path("scheduler.kubeconfig"),
		"--authorization-kubeconfig", c.path("scheduler.kubeconfig"),
		"--leader-elect=false",
		"--bind-address", "127.0.0.1", "--secure-port", "0"); err != nil {
		return err
	}
	// The default ServiceAccount, made by the controller manager, is what pods need first.
	return c.poll(ctx, "the default ServiceAccount", "kube-controller-manager", 60*time.Second, func(ctx context.Context) (bool, error) {
		cs, err := c.Clientset()
		if err != nil {
			return false, err
		}
		_, err = cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, err
	})
}

// Clientset is an admin client of the cluster.
func (c *Cluster) Clientset() (kubernetes.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.path("admin.kubeconfig"))
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 10 * time.Second
	return kubernetes.NewForConfig(cfg)
}
