package chart

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/election-manager/election-manager/internal/testutil"
)

const crdName = "leadergroups.coordination.electionmanager.dev"

var (
	crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	lgGVR  = schema.GroupVersionResource{Group: "coordination.electionmanager.dev", Version: "v1alpha1", Resource: "leadergroups"}
)

// The chart's life on a real kube-apiserver with no CRD installed beforehand: install
// (the chart's CRD is the one that lands), a second installation that serves one
// namespace with namespaced RBAC, an upgrade that changes the Deployment and updates
// the CRD, and uninstall, which leaves the CRD and the users' LeaderGroups. No kubelet
// runs, so pods stay Pending and nothing waits for them.
func TestInstallUpgradeUninstall(t *testing.T) {
	cp, err := testutil.StartControlPlaneWith(testutil.ControlPlaneOptions{NoCRDs: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Stop() })
	kube := kubernetes.NewForConfigOrDie(cp.Config)
	dyn := dynamic.NewForConfigOrDie(cp.Config)
	ctx := t.Context()
	helm := func(args ...string) string {
		t.Helper()
		return mustHelm(t, append(args, "--kubeconfig", cp.Kubeconfig)...)
	}

	if _, err := dyn.Resource(crdGVR).Get(ctx, crdName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the CRD exists before the install (err %v): the test would not prove the chart installs it", err)
	}

	// Install from a copy of the chart whose CRD lacks the Retry-Period column, so the
	// upgrade below shows that the CRD follows the chart.
	old := copyChart(t)
	oldCRD := filepath.Join(old, "files", "crds", "coordination.electionmanager.dev_leadergroups.yaml")
	wantColumns := rewriteCRD(t, oldCRD, func(version map[string]any) {
		cols := version["additionalPrinterColumns"].([]any)
		version["additionalPrinterColumns"] = cols[:len(cols)-1]
	})
	const ns = "election-manager-system"
	out := helm("install", "election-manager", old, "--namespace", ns, "--create-namespace", "--set", "apiPriority.enabled=true")
	for _, want := range []string{"kind: LeaderGroup", "kubectl get lg -n default -w"} {
		if !strings.Contains(out, want) {
			t.Errorf("the install notes do not say %q:\n%s", want, out)
		}
	}

	waitForEstablished(t, dyn)
	if got := printerColumns(t, dyn); got != wantColumns-1 {
		t.Fatalf("the installed CRD has %d printer columns, want the old chart's %d", got, wantColumns-1)
	}
	deploy, err := kube.AppsV1().Deployments(ns).Get(ctx, "election-manager", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the chart's Deployment: %v", err)
	}
	if *deploy.Spec.Replicas != 2 {
		t.Errorf("replicas = %d, want 2", *deploy.Spec.Replicas)
	}
	for _, obj := range []struct {
		gvr       schema.GroupVersionResource
		namespace string
		name      string
	}{
		{schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}, "", "election-manager"},
		{schema.GroupVersionResource{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"}, ns, "election-manager"},
		{schema.GroupVersionResource{Version: "v1", Resource: "services"}, ns, "election-manager-metrics"},
		{schema.GroupVersionResource{Group: "flowcontrol.apiserver.k8s.io", Version: "v1", Resource: "flowschemas"}, "", "election-manager"},
	} {
		if _, err := dyn.Resource(obj.gvr).Namespace(obj.namespace).Get(ctx, obj.name, metav1.GetOptions{}); err != nil {
			t.Errorf("after install: %v", err)
		}
	}

	// A second installation for one team's namespace: namespaced RBAC, and no CRD of
	// its own since the first installation has it. Its namespaces must exist first.
	if _, err := kube.CoreV1().Namespaces().Create(ctx, namespace("team-a"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	helm("install", "team", chartDir, "--namespace", "team-ops", "--create-namespace",
		"--set", "rbac.scope=namespace", "--set", "watchNamespaces={team-a}", "--set", "crds.enabled=false")
	for _, roleNS := range []string{"team-a", "team-ops"} {
		if _, err := kube.RbacV1().RoleBindings(roleNS).Get(ctx, "team-election-manager", metav1.GetOptions{}); err != nil {
			t.Errorf("namespace scope: %v", err)
		}
	}

	helm("upgrade", "election-manager", chartDir, "--namespace", ns, "--set", "apiPriority.enabled=true", "--set", "replicas=3")
	if deploy, err = kube.AppsV1().Deployments(ns).Get(ctx, "election-manager", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if *deploy.Spec.Replicas != 3 {
		t.Errorf("replicas after the upgrade = %d, want 3", *deploy.Spec.Replicas)
	}
	if got := printerColumns(t, dyn); got != wantColumns {
		t.Errorf("after the upgrade the CRD has %d printer columns, want the chart's %d: helm upgrade did not update it", got, wantColumns)
	}

	group := sampleGroup(t)
	if _, err := dyn.Resource(lgGVR).Namespace("default").Create(ctx, group, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating a LeaderGroup with the chart's CRD: %v", err)
	}

	helm("uninstall", "team", "--namespace", "team-ops")
	helm("uninstall", "election-manager", "--namespace", ns)
	if _, err := kube.AppsV1().Deployments(ns).Get(ctx, "election-manager", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the Deployment is still there after uninstall (err %v)", err)
	}
	if _, err := kube.RbacV1().ClusterRoles().Get(ctx, "election-manager", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the manager's ClusterRole is still there after uninstall (err %v)", err)
	}
	if _, err := dyn.Resource(crdGVR).Get(ctx, crdName, metav1.GetOptions{}); err != nil {
		t.Fatalf("helm uninstall removed the CRD: %v", err)
	}
	if _, err := dyn.Resource(lgGVR).Namespace("default").Get(ctx, group.GetName(), metav1.GetOptions{}); err != nil {
		t.Fatalf("helm uninstall removed the LeaderGroup: %v", err)
	}

	// Nothing left behind blocks deleting a group: no finalizer, no webhook.
	if err := dyn.Resource(lgGVR).Namespace("default").Delete(ctx, group.GetName(), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := dyn.Resource(lgGVR).Namespace("default").Get(ctx, group.GetName(), metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Errorf("the LeaderGroup is not gone 10s after its delete: %v", err)
	}
}

// rewriteCRD edits the first version of a CRD file in place and returns how many
// printer columns it had before.
func rewriteCRD(t *testing.T, path string, edit func(version map[string]any)) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var crd map[string]any
	if err := yaml.Unmarshal(b, &crd); err != nil {
		t.Fatal(err)
	}
	version := crd["spec"].(map[string]any)["versions"].([]any)[0].(map[string]any)
	before := len(version["additionalPrinterColumns"].([]any))
	edit(version)
	if b, err = yaml.Marshal(crd); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return before
}

func printerColumns(t *testing.T, dyn dynamic.Interface) int {
	t.Helper()
	crd, err := dyn.Resource(crdGVR).Get(t.Context(), crdName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	cols, _, _ := unstructured.NestedSlice(versions[0].(map[string]any), "additionalPrinterColumns")
	return len(cols)
}

func waitForEstablished(t *testing.T, dyn dynamic.Interface) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, 15*time.Second, true, func(ctx context.Context) (bool, error) {
		crd, err := dyn.Resource(crdGVR).Get(ctx, crdName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, c := range conds {
			c := c.(map[string]any)
			if c["type"] == "Established" && c["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("the chart's CRD is not Established: %v", err)
	}
	// Discovery (which helm and kubectl use) may lag a moment behind Established.
	err = wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, 15*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := dyn.Resource(lgGVR).Namespace("default").List(ctx, metav1.ListOptions{Limit: 1})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("LeaderGroups are not served: %v", err)
	}
}

// sampleGroup is config/samples' LeaderGroup.
func sampleGroup(t *testing.T) *unstructured.Unstructured {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "config", "samples", "coordination_v1alpha1_leadergroup.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(b, &u.Object); err != nil {
		t.Fatal(err)
	}
	if u.GetKind() != "LeaderGroup" || u.GetNamespace() != "default" {
		t.Fatalf("the sample is a %s in %q, want a LeaderGroup in default", u.GetKind(), u.GetNamespace())
	}
	return u
}

func namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}
