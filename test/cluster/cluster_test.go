//go:build cluster

package cluster

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/election-manager/election-manager/api/v1alpha1"
)

// TestCluster goes through the product's life on one cluster, in the order a user
// meets it: install, use (Manager groups, a Pods group behind a Service, the elector
// sidecar), a node fault, upgrade, uninstall. A step that cannot start without the one
// before stops the run.
func TestCluster(t *testing.T) {
	if !t.Run("install", testInstall) {
		t.FailNow()
	}
	t.Run("metrics behind authentication and authorization", testMetrics)
	t.Run("manager group fails over", testManagerFailover)
	t.Run("pods group behind a leader-only Service", testPodsService)
	t.Run("elector sidecar sample", testSidecarSample)
	t.Run("kubelet stopped past the grace period", testKubeletStopped)
	t.Run("upgrade", testUpgrade)
	t.Run("uninstall keeps the CRD and the groups", testUninstall)
}

// testInstall installs the chart into a namespace that enforces the restricted Pod
// Security Standard, so that a pod spec the standard refuses would never start.
func testInstall(t *testing.T) {
	apply(t, `apiVersion: v1
kind: Namespace
metadata:
  name: `+namespace+`
  labels:
    pod-security.kubernetes.io/enforce: restricted
`)
	start := time.Now()
	run(t, helm, "install", release, chart, "--namespace", namespace, "--wait", "--timeout", "3m",
		"--set", "podsSource.enabled=true")
	t.Logf("helm install --wait: %.1fs", time.Since(start).Seconds())

	pods := managerPods(t, 2)
	for _, p := range pods {
		if p.Spec.ServiceAccountName != release {
			t.Errorf("pod %s runs as ServiceAccount %q, want the chart's %q", p.Name, p.Spec.ServiceAccountName, release)
		}
		sc := p.Spec.Containers[0].SecurityContext
		if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("pod %s: the manager's security context is not restricted: %+v", p.Name, sc)
		}
		if n := p.Status.ContainerStatuses[0].RestartCount; n != 0 {
			t.Errorf("pod %s: the manager restarted %d times (its probes failed?)", p.Name, n)
		}
		if img := p.Status.ContainerStatuses[0].Image; !strings.HasSuffix(img, cluster.Images.Manager) {
			t.Errorf("pod %s runs image %s, want the chart's default %s", p.Name, img, cluster.Images.Manager)
		}
	}
	// The chart's RBAC, no more: the manager's ServiceAccount may not read Secrets.
	sa := "system:serviceaccount:" + namespace + ":" + release
	for _, c := range []struct{ verb, resource, sub, want string }{
		{"update", "leases.coordination.k8s.io", "", "yes"},
		{"patch", "leadergroups.coordination.electionmanager.dev", "status", "yes"},
		{"update", "leadergroups.coordination.electionmanager.dev", "", "no"}, // never the spec
		{"patch", "pods", "", "yes"},                                          // podsSource.enabled
		{"get", "secrets", "", "no"},
		{"delete", "pods", "", "no"},
	} {
		args := []string{"auth", "can-i", c.verb, c.resource, "--all-namespaces", "--as", sa}
		if c.sub != "" {
			args = append(args, "--subresource", c.sub)
		}
		out, _ := tryRun(kubectl, args...)
		if got := strings.TrimSpace(out); got != c.want {
			t.Errorf("can the manager %s %s %s? %q, want %q", c.verb, c.resource, c.sub, got, c.want)
		}
	}
}

// managerPods waits for n manager pods, Running and Ready, and returns them.
func managerPods(t *testing.T, n int) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	eventually(t, fmt.Sprintf("%d manager pods Running and Ready", n), 3*time.Minute, func() (bool, error) {
		list, err := clientset.CoreV1().Pods(namespace).List(context.Background(), metav1.ListOptions{
			LabelSelector: labels.Set{"app.kubernetes.io/name": "election-manager"}.String()})
		if err != nil {
			return false, err
		}
		pods = pods[:0]
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil && ready(&p) {
				pods = append(pods, p)
			}
		}
		return len(pods) == n && len(list.Items) == n, nil
	})
	return pods
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// group reads a LeaderGroup.
func group(t *testing.T, ns, name string) *v1alpha1.LeaderGroup {
	t.Helper()
	g := &v1alpha1.LeaderGroup{}
	if err := k8s.Get(context.Background(), keyOf(ns, name), g); err != nil {
		t.Fatal(err)
	}
	return g
}

// rolledOut waits for a Deployment's rollout, as kubectl rollout status would.
func rolledOut(t *testing.T, ns, name string, timeout time.Duration) {
	t.Helper()
	run(t, kubectl, "rollout", "status", "deployment/"+name, "-n", ns, "--timeout", timeout.String())
}

var _ = appsv1.Deployment{}
