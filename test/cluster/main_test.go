//go:build cluster

// Package cluster runs the end-to-end tests on a real one-node cluster of their own
// (test/cluster/node): the chart installed with helm, the manager as pods under the
// chart's ServiceAccount and RBAC, real readiness probes, Services through kube-proxy.
// They drive it with kubectl and helm, as a user would. They need root: make
// test-cluster.
package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/election-manager/election-manager/cmd/manager/app"
	"github.com/election-manager/election-manager/internal/testutil"
	"github.com/election-manager/election-manager/test/cluster/node"
)

var (
	cluster   *node.Cluster
	clientset kubernetes.Interface
	k8s       client.Client
	kubectl   string
	helm      string
)

// The chart's release, as a user would install it.
const (
	release   = "election-manager"
	namespace = "election-manager-system"
	chart     = "charts/election-manager"
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		if os.Geteuid() != 0 {
			fmt.Fprintln(os.Stderr, "test/cluster: root is required (containerd, iptables, network namespaces); run make test-cluster as root")
			return 1
		}
		assets, err := testutil.AssetsDir()
		if err != nil {
			fmt.Fprintln(os.Stderr, "test/cluster:", err)
			return 1
		}
		kubectl, helm = filepath.Join(assets, "kubectl"), os.Getenv("HELM")
		if helm == "" {
			fmt.Fprintln(os.Stderr, "test/cluster: HELM names the helm binary (make test-cluster sets it)")
			return 1
		}
		dir := os.Getenv("CLUSTER_DIR")
		if dir == "" {
			dir = filepath.Join(testutil.RepoRoot(), "bin", "cluster")
		}
		start := time.Now()
		cluster, err = node.Up(context.Background(), node.Config{Dir: dir, Bin: assets, Repo: testutil.RepoRoot(),
			Log: func(format string, args ...any) { fmt.Fprintf(os.Stderr, "cluster: "+format+"\n", args...) }})
		if err != nil {
			fmt.Fprintln(os.Stderr, "test/cluster:", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "cluster: up in %.0fs\n", time.Since(start).Seconds())
		defer func() {
			if err := node.Down(cluster.Config); err != nil {
				fmt.Fprintln(os.Stderr, "test/cluster: tearing down:", err)
			}
		}()
		if err := clients(); err != nil {
			fmt.Fprintln(os.Stderr, "test/cluster:", err)
			return 1
		}
		return m.Run()
	}())
}

func clients() error {
	ctrl.SetLogger(logr.Discard())
	cfg, err := clientcmd.BuildConfigFromFlags("", cluster.Kubeconfig)
	if err != nil {
		return err
	}
	if clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	scheme, err := app.NewScheme()
	if err != nil {
		return err
	}
	k8s, err = client.New(cfg, client.Options{Scheme: scheme})
	return err
}

// run runs a user's command (kubectl, helm) against the cluster from the repository's
// root, and fails the test with its output when it fails.
func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := tryRun(bin, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, out)
	}
	return out
}

func tryRun(bin string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = testutil.RepoRoot()
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cluster.Kubeconfig)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// apply applies YAML with kubectl.
func apply(t *testing.T, yaml string) {
	t.Helper()
	cmd := exec.Command(kubectl, "apply", "-f", "-")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cluster.Kubeconfig)
	cmd.Stdin = strings.NewReader(yaml)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
}

// eventually polls cond every 100ms until it holds, and fails the test naming what
// did not happen.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	var last error
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		ok, err := cond()
		last = err
		return ok, nil
	})
	if err != nil {
		t.Fatalf("%s: not within %s (last error: %v)", what, timeout, last)
	}
}
