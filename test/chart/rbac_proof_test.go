package chart

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/election-manager/election-manager/internal/testutil"
)

// The chart's RBAC, proven: after helm install, the manager binary runs as the
// chart's ServiceAccount (by impersonation) with the Deployment's own arguments and
// elects, writes status and records Events. Taking one permission away makes the
// same run fail with a clear RBAC error, so the proof can fail.
func TestChartRBACLetsTheManagerWork(t *testing.T) {
	manager, err := testutil.BuildBinary(t.TempDir(), "cmd/manager")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, scope, groupNamespace string
		values                      []string
	}{
		{"cluster scope", "cluster", "default", nil},
		{"namespace scope", "namespace", "team-a", []string{"--set", "rbac.scope=namespace", "--set", "watchNamespaces={team-a}"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cp, kube, dyn := installChart(t, tc.values, tc.groupNamespace)
			run := runAsServiceAccount(t, cp, kube, manager)
			createGroup(t, dyn, tc.groupNamespace, "proof")
			holder := waitForHolder(t, dyn, tc.groupNamespace, "proof")
			if holder != run.id {
				t.Errorf("holder %q, want the manager %q", holder, run.id)
			}
			waitForGroupEvent(t, kube, tc.groupNamespace, "proof", "LeaderElected")
			if strings.Contains(run.Output(), "forbidden") {
				t.Errorf("the manager met a forbidden request:\n%s", run.Output())
			}
		})
	}

	t.Run("a removed permission fails clearly", func(t *testing.T) {
		cp, kube, dyn := installChart(t, nil, "default")
		// Take away the status write: the manager still elects, but must say what it may not do.
		roles, err := kube.RbacV1().ClusterRoles().List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=proof"})
		if err != nil {
			t.Fatal(err)
		}
		removed := 0
		for i := range roles.Items {
			role := &roles.Items[i]
			var kept []rbacv1.PolicyRule
			for _, r := range role.Rules {
				if len(r.Resources) == 1 && r.Resources[0] == "leadergroups/status" {
					removed++
					continue
				}
				kept = append(kept, r)
			}
			role.Rules = kept
			if _, err := kube.RbacV1().ClusterRoles().Update(context.Background(), role, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if removed == 0 {
			t.Fatal("the chart's roles have no leadergroups/status rule to remove")
		}
		run := runAsServiceAccount(t, cp, kube, manager)
		createGroup(t, dyn, "default", "proof")
		run.WaitForOutput(t, `cannot patch resource \"leadergroups/status\"`, 30*time.Second)
	})
}

const releaseNamespace = "election-manager-system"

// installChart starts a control plane without the CRD and installs the chart as
// release "proof", with a namespace for the groups.
func installChart(t *testing.T, values []string, groupNamespace string) (*testutil.ControlPlane, kubernetes.Interface, dynamic.Interface) {
	t.Helper()
	cp, err := testutil.StartControlPlaneWith(testutil.ControlPlaneOptions{NoCRDs: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Stop() })
	kube := kubernetes.NewForConfigOrDie(cp.Config)
	dyn := dynamic.NewForConfigOrDie(cp.Config)
	if groupNamespace != "default" {
		if _, err := kube.CoreV1().Namespaces().Create(context.Background(), namespace(groupNamespace), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mustHelm(t, append([]string{"install", "proof", chartDir, "--namespace", releaseNamespace, "--create-namespace",
		"--kubeconfig", cp.Kubeconfig}, values...)...)
	waitForEstablished(t, dyn)
	return cp, kube, dyn
}

type managerRun struct {
	*testutil.Process
	id string
}

// runAsServiceAccount runs the manager with the installed Deployment's arguments,
// impersonating its ServiceAccount, with the listeners turned off.
func runAsServiceAccount(t *testing.T, cp *testutil.ControlPlane, kube kubernetes.Interface, manager string) managerRun {
	t.Helper()
	deploy, err := kube.AppsV1().Deployments(releaseNamespace).Get(context.Background(), "proof-election-manager", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sa := deploy.Spec.Template.Spec.ServiceAccountName
	cfg, err := clientcmd.LoadFromFile(cp.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, user := range cfg.AuthInfos {
		user.Impersonate = "system:serviceaccount:" + releaseNamespace + ":" + sa
		user.ImpersonateGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + releaseNamespace, "system:authenticated"}
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
		t.Fatal(err)
	}
	id := "proof-manager"
	args := append(containerArgs(t, deploy), "--kubeconfig", kubeconfig, "--id", id,
		"--metrics-bind-address=0", "--health-probe-bind-address=0")
	p := testutil.StartProcess(t, "manager", manager, args...)
	p.WaitForOutput(t, "Became the status writer", 30*time.Second)
	return managerRun{Process: p, id: id}
}

func containerArgs(t *testing.T, d *appsv1.Deployment) []string {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "manager" {
			return c.Args
		}
	}
	t.Fatal("the Deployment has no manager container")
	return nil
}

func createGroup(t *testing.T, dyn dynamic.Interface, ns, name string) {
	t.Helper()
	g := sampleGroup(t)
	g.SetNamespace(ns)
	g.SetName(name)
	if _, err := dyn.Resource(lgGVR).Namespace(ns).Create(context.Background(), g, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func waitForHolder(t *testing.T, dyn dynamic.Interface, ns, name string) string {
	t.Helper()
	var holder string
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true,
		func(ctx context.Context) (bool, error) {
			g, err := dyn.Resource(lgGVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			var status struct {
				Holder string `json:"holder"`
			}
			raw, _ := json.Marshal(g.Object["status"])
			_ = json.Unmarshal(raw, &status)
			holder = status.Holder
			return holder != "", nil
		})
	if err != nil {
		t.Fatalf("LeaderGroup %s/%s got no holder in its status", ns, name)
	}
	return holder
}

func waitForGroupEvent(t *testing.T, kube kubernetes.Interface, ns, group, reason string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true,
		func(ctx context.Context) (bool, error) {
			events, err := kube.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, nil
			}
			for _, e := range events.Items {
				if e.Regarding.Name == group && e.Reason == reason && e.Type == corev1.EventTypeNormal {
					return true, nil
				}
			}
			return false, nil
		})
	if err != nil {
		t.Errorf("no %s Event on LeaderGroup %s/%s", reason, ns, group)
	}
}
