package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/election-manager/election-manager/internal/testutil"
)

// runKubectl runs the pinned kubectl against kubeconfig and returns its combined output.
func runKubectl(t *testing.T, kubeconfig string, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestKubectlAppliesTheSampleAndShowsTheColumns(t *testing.T) {
	sample := filepath.Join(testutil.RepoRoot(), "config", "samples", "coordination_v1alpha1_leadergroup.yaml")
	if out, err := runKubectl(t, cp.Kubeconfig, "", "apply", "-f", sample); err != nil {
		t.Fatalf("kubectl apply -f %s: %v\n%s", sample, err, out)
	}
	out, err := runKubectl(t, cp.Kubeconfig, "", "get", "lg")
	if err != nil {
		t.Fatalf("kubectl get lg: %v\n%s", err, out)
	}
	requireHeader(t, out, "NAME", "HOLDER", "SINCE", "TRANSITIONS", "SOURCE", "READY", "AGE")
	if !regexp.MustCompile(`(?m)^payments-scheduler\s+Manager\s`).MatchString(out) {
		t.Errorf("kubectl get lg does not list the sample with its source:\n%s", out)
	}
	out, err = runKubectl(t, cp.Kubeconfig, "", "get", "leadergroups", "-o", "wide")
	if err != nil {
		t.Fatalf("kubectl get leadergroups -o wide: %v\n%s", err, out)
	}
	requireHeader(t, out, "NAME", "HOLDER", "SINCE", "TRANSITIONS", "SOURCE", "READY", "AGE",
		"LEASE", "LEASE-DURATION", "RENEW-DEADLINE", "RETRY-PERIOD")
	if !regexp.MustCompile(`(?m)^payments-scheduler\s.*\s15s\s+10s\s+2s\s*$`).MatchString(out) {
		t.Errorf("-o wide does not show the timings:\n%s", out)
	}
}

func requireHeader(t *testing.T, out string, columns ...string) {
	t.Helper()
	header := strings.Fields(strings.SplitN(out, "\n", 2)[0])
	if strings.Join(header, " ") != strings.Join(columns, " ") {
		t.Errorf("columns are %v, want %v", header, columns)
	}
}

func TestKubectlExplainDocumentsEveryField(t *testing.T) {
	for field, want := range map[string]string{
		"leadergroup.spec":                        "renewDeadline is how long the leader keeps trying to renew",
		"leadergroup.spec.lease":                  "Defaults to the LeaderGroup's name",
		"leadergroup.spec.candidates.source":      "External: the",
		"leadergroup.spec.candidates.podSelector": "Required with",
		"leadergroup.status.history":              "startReason says how the term began",
	} {
		out, err := runKubectl(t, cp.Kubeconfig, "", "explain", field)
		if err != nil {
			t.Fatalf("kubectl explain %s: %v\n%s", field, err, out)
		}
		if !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
			t.Errorf("kubectl explain %s does not say %q:\n%s", field, want, out)
		}
	}
}

func TestKubectlApplyRefusesABadGroupNamingTheField(t *testing.T) {
	bad := "apiVersion: coordination.electionmanager.dev/v1alpha1\nkind: LeaderGroup\nmetadata: {name: bad, namespace: default}\n" +
		"spec: {leaseDuration: 10s, renewDeadline: 10s}\n"
	out, err := runKubectl(t, cp.Kubeconfig, bad, "apply", "-f", "-")
	if err == nil {
		t.Fatalf("kubectl apply accepted a group whose lease is not longer than renewDeadline + retryPeriod:\n%s", out)
	}
	if !strings.Contains(out, "spec.leaseDuration") || !strings.Contains(out, "greater than renewDeadline + retryPeriod") {
		t.Errorf("the refusal does not name the field:\n%s", out)
	}
}

// make run: a local control plane, a kubeconfig a user can point kubectl at, the
// manager; Ctrl-C stops all of it.
func TestRunLocalStartsAndStopsEverything(t *testing.T) {
	dir := t.TempDir()
	run := testutil.StartProcess(t, "run-local", runLocal, "--manager", managerBin, "--dir", dir, "--",
		"--metrics-bind-address=0", "--health-probe-bind-address=0")
	kubeconfig := filepath.Join(dir, "kubeconfig")
	run.WaitForOutput(t, "export KUBECONFIG="+kubeconfig+" PATH=", 90*time.Second)
	run.WaitForOutput(t, `"msg":"Starting manager"`, 30*time.Second)

	out, err := runKubectl(t, kubeconfig, "", "get", "crd", "leadergroups.coordination.electionmanager.dev")
	if err != nil {
		t.Fatalf("the local control plane has no LeaderGroup CRD: %v\n%s", err, out)
	}
	if err := run.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := run.Wait(t, 60*time.Second); code != 0 {
		t.Fatalf("run-local exited with %d after Ctrl-C", code)
	}
	if !strings.Contains(run.Output(), "Stopping kube-apiserver and etcd") {
		t.Errorf("run-local did not say it stopped the control plane:\n%s", run.Output())
	}
	if out, err := runKubectl(t, kubeconfig, "", "get", "--raw", "/readyz", "--request-timeout=2s"); err == nil {
		t.Errorf("the local API server still answers after Ctrl-C:\n%s", out)
	}
	if _, err := os.Stat(kubeconfig); err != nil {
		t.Errorf("the kubeconfig is gone: %v", err)
	}
}

// Every sample is accepted by the real API server, as kubectl apply sends it.
func TestKubectlAcceptsEverySample(t *testing.T) {
	samples, err := filepath.Glob(filepath.Join(testutil.RepoRoot(), "config", "samples", "*.yaml"))
	if err != nil || len(samples) < 2 {
		t.Fatalf("samples: %v %v", samples, err)
	}
	for _, sample := range samples {
		if filepath.Base(sample) == "kustomization.yaml" {
			continue
		}
		t.Run(filepath.Base(sample), func(t *testing.T) {
			if out, err := runKubectl(t, cp.Kubeconfig, "", "apply", "--dry-run=server", "-f", sample); err != nil {
				t.Errorf("kubectl apply --dry-run=server -f %s: %v\n%s", sample, err, out)
			}
		})
	}
}
