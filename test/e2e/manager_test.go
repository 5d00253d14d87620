package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/election-manager/election-manager/internal/testutil"
)

// The manager, run as a user runs it: a process with a kubeconfig and flags.

func TestManagerServesProbes(t *testing.T) {
	port := testutil.FreePort(t)
	m := testutil.StartProcess(t, "manager", managerBin, "--kubeconfig", cp.Kubeconfig, "--id", "probes",
		"--metrics-bind-address=0", fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", port))
	for _, path := range []string{"/healthz", "/readyz"} {
		url := fmt.Sprintf("http://127.0.0.1:%d%s", port, path)
		waitForStatus(t, http.DefaultClient, url, "", http.StatusOK)
	}
	requireGracefulStop(t, m)
}

// A manager started while the API server cannot be reached, or before it serves
// the LeaderGroup API (kube-apiserver serves a CRD's discovery a moment after it
// starts), waits for it instead of exiting, and then serves.
func TestManagerWaitsForTheAPIServerAndTheLeaderGroupAPI(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		c := newCluster(t)
		kubeconfig, proxy := proxiedKubeconfig(t)
		proxy.SetMode(testutil.Refuse)
		m := testutil.StartProcess(t, "waiting", managerBin, c.managerArgs(kubeconfig, "waiting")...)
		m.WaitForOutput(t, `"msg":"Cannot reach the API server, retrying"`, 10*time.Second)
		proxy.SetMode(testutil.Pass)
		m.WaitForOutput(t, `"msg":"Starting manager"`, 40*time.Second)
		c.group("payments")
		c.waitFor("payments", 10*time.Second, "held by the manager that waited", heldBy("waiting"))
	})
	t.Run("the CRD not served yet", func(t *testing.T) {
		bare, err := testutil.StartControlPlaneWith(testutil.ControlPlaneOptions{NoCRDs: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = bare.Stop() })
		m := testutil.StartProcess(t, "early", managerBin, "--kubeconfig", bare.Kubeconfig, "--id", "early",
			"--metrics-bind-address=0", "--health-probe-bind-address=0", "--zap-time-encoding=rfc3339nano")
		m.WaitForOutput(t, `"msg":"The API server does not serve it yet, retrying"`, 20*time.Second)
		if out, err := runKubectl(t, bare.Kubeconfig, "", "apply", "-f", filepath.Join(testutil.RepoRoot(), "config", "crd", "bases")); err != nil {
			t.Fatalf("kubectl apply the CRD: %v\n%s", err, out)
		}
		m.WaitForOutput(t, `"msg":"Starting manager"`, 40*time.Second)
		group := "apiVersion: coordination.electionmanager.dev/v1alpha1\nkind: LeaderGroup\nmetadata: {name: payments, namespace: default}\n"
		if out, err := runKubectl(t, bare.Kubeconfig, group, "apply", "-f", "-"); err != nil {
			t.Fatalf("kubectl apply the group: %v\n%s", err, out)
		}
		poll(t, 20*time.Second, "the group held by the manager that waited", func() bool {
			out, _ := runKubectl(t, bare.Kubeconfig, "", "get", "leadergroup", "payments", "-n", "default", "-o", "jsonpath={.status.holder}")
			return out == "early"
		})
	})
}

// Scripts run several managers on one machine with only --kubeconfig, --id and the two
// listeners disabled; none may fail for a port another one holds.
func TestManagersWithListenersDisabledDoNotClash(t *testing.T) {
	var managers []*testutil.Process
	for _, id := range []string{"quiet-a", "quiet-b"} {
		m := testutil.StartProcess(t, id, managerBin, "--kubeconfig", cp.Kubeconfig, "--id", id,
			"--metrics-bind-address=0", "--health-probe-bind-address=0")
		m.WaitForOutput(t, `"msg":"Starting manager","id":"`+id+`"`, 30*time.Second)
		managers = append(managers, m)
	}
	// A third one with probes shows when a manager has had time to bind its
	// listeners; the quiet ones must still run then, and stop cleanly.
	port := testutil.FreePort(t)
	probe := testutil.StartProcess(t, "probe", managerBin, "--kubeconfig", cp.Kubeconfig, "--id", "probe",
		"--metrics-bind-address=0", fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", port))
	waitForStatus(t, http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/readyz", port), "", http.StatusOK)
	for _, m := range append(managers, probe) {
		requireGracefulStop(t, m)
	}
}

func TestManagerMetricsRequireAuthorization(t *testing.T) {
	ctx := context.Background()
	port := testutil.FreePort(t)
	m := testutil.StartProcess(t, "manager", managerBin, "--kubeconfig", cp.Kubeconfig, "--id", "metrics",
		"--health-probe-bind-address=0", fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", port))
	url := fmt.Sprintf("https://127.0.0.1:%d/metrics", port)
	// The serving certificate is self-signed; this test checks authorization, not TLS.
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}

	waitForStatus(t, insecure, url, "", http.StatusUnauthorized)
	stranger := serviceAccountToken(ctx, t, "metrics-stranger", false)
	waitForStatus(t, insecure, url, stranger, http.StatusForbidden)
	reader := serviceAccountToken(ctx, t, "metrics-reader", true)
	body := waitForStatus(t, insecure, url, reader, http.StatusOK)
	if !strings.Contains(body, "controller_runtime_") && !strings.Contains(body, "go_goroutines") {
		t.Errorf("metrics answer has no metrics:\n%.500s", body)
	}
	requireGracefulStop(t, m)
}

func TestManagerRefusesBadFlagsNamingThem(t *testing.T) {
	cases := []struct {
		flag, value, want string
	}{
		{"--lock-lease-duration", "1500ms", "--lock-lease-duration 1.5s: must be whole seconds"},
		{"--lock-renew-deadline", "20s", "--lock-lease-duration 15s: must be greater than --lock-renew-deadline + --lock-retry-period"},
		{"--lock-retry-period", "9s", "--lock-renew-deadline 10s: must be greater than 1.2 × --lock-retry-period"},
		{"--group-selector", "tier in (web", "--group-selector"},
		{"--namespaces", "team_a", `--namespaces: "team_a"`},
		{"--id", "Not An ID", `--id "Not An ID"`},
	}
	for _, tc := range cases {
		t.Run(tc.flag, func(t *testing.T) {
			m := testutil.StartProcess(t, "manager", managerBin, "--kubeconfig", cp.Kubeconfig,
				"--metrics-bind-address=0", "--health-probe-bind-address=0", tc.flag+"="+tc.value)
			if code := m.Wait(t, 30*time.Second); code == 0 {
				t.Fatalf("exited 0; want a refusal of %s", tc.flag)
			}
			if !strings.Contains(m.Output(), tc.want) {
				t.Errorf("output does not say %q:\n%s", tc.want, m.Output())
			}
		})
	}
}

// requireGracefulStop sends SIGTERM and expects a clean exit: the process was up and
// well until then.
func requireGracefulStop(t *testing.T, p *testutil.Process) {
	t.Helper()
	if p.Exited() {
		t.Fatalf("%s exited before it was stopped", p.Name)
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("%s exited with %d after SIGTERM", p.Name, code)
	}
}

// waitForStatus polls url until it answers want, and returns the body.
func waitForStatus(t *testing.T, c *http.Client, url, token string, want int) string {
	t.Helper()
	var got int
	var body string
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true,
		func(ctx context.Context) (bool, error) {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := c.Do(req)
			if err != nil {
				return false, nil // not listening yet
			}
			defer func() { _ = resp.Body.Close() }()
			var sb strings.Builder
			_, _ = fmt.Fprint(&sb, readAll(resp))
			got, body = resp.StatusCode, sb.String()
			return got == want, nil
		})
	if err != nil {
		t.Fatalf("GET %s: status %d, want %d (%v)", url, got, want, err)
	}
	return body
}

// serviceAccountToken creates a service account and returns a token for it; with
// canReadMetrics it may GET /metrics.
func serviceAccountToken(ctx context.Context, t *testing.T, name string, canReadMetrics bool) string {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	if _, err := clientset.CoreV1().ServiceAccounts("default").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if canReadMetrics {
		role := &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
		}
		binding := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: "default"}},
		}
		if _, err := clientset.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := clientset.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}
	tok, err := clientset.CoreV1().ServiceAccounts("default").CreateToken(ctx, name, req, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Status.Token
}
