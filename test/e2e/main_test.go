// Package e2e runs the project's binaries as processes against a real kube-apiserver
// and etcd, and drives them with kubectl, as a user would.
package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/election-manager/election-manager/cmd/manager/app"
	"github.com/election-manager/election-manager/internal/testutil"
)

var (
	cp         *testutil.ControlPlane
	clientset  kubernetes.Interface
	k8s        client.Client
	managerBin string
	runLocal   string
	// clientGoElector is client-go's leader-election example (testdata).
	clientGoElector string
	// pluginDir holds kubectl-leadergroup, for kubectl to find on PATH.
	pluginDir string
	kubectl   string
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		if err := setUp(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		defer func() { _ = cp.Stop() }()
		return m.Run()
	}())
}

func setUp() error {
	bin, err := os.MkdirTemp("", "election-manager-e2e-")
	if err != nil {
		return err
	}
	if managerBin, err = testutil.BuildBinary(bin, "cmd/manager"); err != nil {
		return err
	}
	if runLocal, err = testutil.BuildBinary(bin, "hack/run-local"); err != nil {
		return err
	}
	if clientGoElector, err = testutil.BuildBinary(bin, "test/e2e/testdata/clientgo-elector"); err != nil {
		return err
	}
	if pluginDir, err = os.MkdirTemp("", "election-manager-plugin-"); err != nil {
		return err
	}
	if _, err = testutil.BuildBinary(pluginDir, "cmd/kubectl-leadergroup"); err != nil {
		return err
	}
	assets, err := testutil.AssetsDir()
	if err != nil {
		return err
	}
	kubectl = filepath.Join(assets, "kubectl")
	if cp, err = testutil.StartControlPlane(); err != nil {
		return err
	}
	if err := cp.StartGarbageCollector(); err != nil {
		return err
	}
	if clientset, err = kubernetes.NewForConfig(cp.Config); err != nil {
		return err
	}
	scheme, err := app.NewScheme()
	if err != nil {
		return err
	}
	k8s, err = client.New(cp.Config, client.Options{Scheme: scheme})
	return err
}

func readAll(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
