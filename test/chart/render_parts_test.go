package chart

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/election-manager/election-manager/internal/testutil"
)

func TestRenderCRD(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "config", "crd", "bases", "coordination.electionmanager.dev_leadergroups.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var generated map[string]any
	if err := yaml.Unmarshal(b, &generated); err != nil {
		t.Fatal(err)
	}

	var crd unstructured.Unstructured
	render(t, chartDir).mustGet("CustomResourceDefinition", "", crdName, &crd)
	if !reflect.DeepEqual(crd.Object["spec"], generated["spec"]) {
		t.Error("the chart's CRD spec differs from config/crd/bases: run 'make manifests'")
	}
	if got := crd.GetAnnotations()["helm.sh/resource-policy"]; got != "keep" {
		t.Errorf("helm.sh/resource-policy = %q, want keep", got)
	}
	if got := crd.GetAnnotations()["controller-gen.kubebuilder.io/version"]; got == "" {
		t.Error("the generated annotations are lost")
	}

	crd = unstructured.Unstructured{}
	render(t, chartDir, "--set", "crds.keep=false").mustGet("CustomResourceDefinition", "", crdName, &crd)
	if _, ok := crd.GetAnnotations()["helm.sh/resource-policy"]; ok {
		t.Error("crds.keep=false still annotates the CRD with helm.sh/resource-policy")
	}

	if r := render(t, chartDir, "--set", "crds.enabled=false"); len(r.ofKind("CustomResourceDefinition")) != 0 {
		t.Error("crds.enabled=false renders a CRD")
	}
}

func TestRenderOptionalParts(t *testing.T) {
	t.Parallel()
	optional := []string{"ServiceMonitor", "PrometheusRule", "FlowSchema", "PriorityLevelConfiguration"}

	off := render(t, chartDir)
	for _, kind := range optional {
		if len(off.ofKind(kind)) != 0 {
			t.Errorf("a %s is rendered by default", kind)
		}
	}

	on := render(t, chartWithPodsRole(t), "-f", filepath.Join("testdata", "all-enabled.yaml"))
	for _, kind := range optional {
		if len(on.ofKind(kind)) != 1 {
			t.Errorf("%d %s objects with every optional part on, want 1", len(on.ofKind(kind)), kind)
		}
	}

	var svc corev1.Service
	on.mustGet("Service", releaseNS, fullname+"-metrics", &svc)
	var sm unstructured.Unstructured
	on.mustGet("ServiceMonitor", releaseNS, fullname, &sm)
	matchLabels, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	for k, v := range matchLabels {
		if svc.Labels[k] != v {
			t.Errorf("the ServiceMonitor selects %s=%s, which the metrics Service lacks (%v)", k, v, svc.Labels)
		}
	}
	endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(endpoints) != 1 {
		t.Fatalf("ServiceMonitor endpoints = %v", endpoints)
	}
	ep := endpoints[0].(map[string]any)
	if ep["port"] != "https" || ep["scheme"] != "https" || ep["interval"] != "15s" || ep["honorLabels"] != true {
		t.Errorf("ServiceMonitor endpoint = %v", ep)
	}
	if sm.GetLabels()["release"] != "prometheus" {
		t.Errorf("ServiceMonitor labels = %v, want the extra label release=prometheus", sm.GetLabels())
	}

	var rule unstructured.Unstructured
	on.mustGet("PrometheusRule", releaseNS, fullname, &rule)
	groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
	alerts := map[string]map[string]any{}
	for _, g := range groups {
		rules, _, _ := unstructured.NestedSlice(g.(map[string]any), "rules")
		for _, r := range rules {
			r := r.(map[string]any)
			alerts[r["alert"].(string)] = r
		}
	}
	for name, metric := range map[string]string{
		"ElectionManagerGroupLeaderless": "election_manager_group_has_leader",
		"ElectionManagerSplitBrain":      "election_manager_split_brain_total",
		"ElectionManagerNoStatusWriter":  "election_manager_status_writer",
	} {
		a, ok := alerts[name]
		if !ok {
			t.Errorf("no alert %s; alerts: %v", name, alerts)
			continue
		}
		expr, _ := a["expr"].(string)
		if !strings.Contains(expr, metric+`{job="`+fullname+`-metrics"}`) {
			t.Errorf("%s expr does not use %s of this release's job:\n%s", name, metric, expr)
		}
	}
	if a := alerts["ElectionManagerGroupLeaderless"]; a["for"] != "2m" {
		t.Errorf("ElectionManagerGroupLeaderless for = %v, want metrics.prometheusRule.leaderlessFor", a["for"])
	}

	var plc flowcontrolv1.PriorityLevelConfiguration
	on.mustGet("PriorityLevelConfiguration", "", fullname, &plc)
	if plc.Spec.Type != flowcontrolv1.PriorityLevelEnablementLimited || *plc.Spec.Limited.NominalConcurrencyShares != 20 || *plc.Spec.Limited.LendablePercent != 10 {
		t.Errorf("PriorityLevelConfiguration spec = %+v", plc.Spec)
	}
	var fs flowcontrolv1.FlowSchema
	on.mustGet("FlowSchema", "", fullname, &fs)
	if fs.Spec.PriorityLevelConfiguration.Name != plc.Name || fs.Spec.MatchingPrecedence != 650 || len(fs.Spec.Rules) != 1 {
		t.Fatalf("FlowSchema spec = %+v", fs.Spec)
	}
	fr := fs.Spec.Rules[0]
	if len(fr.Subjects) != 1 || fr.Subjects[0].ServiceAccount == nil ||
		*fr.Subjects[0].ServiceAccount != (flowcontrolv1.ServiceAccountSubject{Name: "em-manager", Namespace: releaseNS}) {
		t.Errorf("FlowSchema subjects = %+v, want the manager's ServiceAccount", fr.Subjects)
	}
	if len(fr.ResourceRules) != 1 || !reflect.DeepEqual(fr.ResourceRules[0].Resources, []string{"leases"}) ||
		!reflect.DeepEqual(fr.ResourceRules[0].Namespaces, []string{releaseNS, "shared", "team-a", "team-b"}) {
		t.Errorf("FlowSchema resource rules = %+v, want leases in the served and release namespaces", fr.ResourceRules)
	}

	d := on.deployment()
	c := d.Spec.Template.Spec.Containers[0]
	wantArgs := []string{
		"--metrics-bind-address=:8443",
		"--health-probe-bind-address=:8081",
		"--namespaces=team-a,team-b",
		"--external-lease-namespaces=shared",
		"--pods-source",
		"--group-selector=tier=payments",
		"--lock-name=em-lock",
		"--lock-namespace=" + releaseNS,
		"--lock-lease-duration=20s",
		"--lock-renew-deadline=12s",
		"--lock-retry-period=3s",
		"--zap-log-level=debug",
		"--zap-encoder=console",
		"--zap-devel",
	}
	if !reflect.DeepEqual(c.Args, wantArgs) {
		t.Errorf("args:\n got %q\nwant %q", c.Args, wantArgs)
	}
	pod := d.Spec.Template.Spec
	if c.Image != "registry.example.com/election-manager:v0.1.0-test" || pod.ImagePullSecrets[0].Name != "regcred" ||
		pod.PriorityClassName != "system-cluster-critical" || *pod.TerminationGracePeriodSeconds != 45 ||
		pod.NodeSelector["kubernetes.io/arch"] != "amd64" || len(pod.Tolerations) != 1 ||
		d.Spec.Template.Labels["team"] != "platform" || d.Spec.Template.Annotations["example.com/scrape"] != "false" {
		t.Errorf("pod settings from values are missing: %+v", pod)
	}
	if pod.Affinity.NodeAffinity == nil || len(pod.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Errorf("affinity = %+v, want the node affinity from values and required anti-affinity", pod.Affinity)
	}
	if tsc := pod.TopologySpreadConstraints; len(tsc) != 1 || !reflect.DeepEqual(tsc[0].LabelSelector.MatchLabels, d.Spec.Selector.MatchLabels) {
		t.Errorf("topologySpreadConstraints = %+v, want the pods' selector filled in", tsc)
	}

	noMetrics := render(t, chartDir, "--set", "metrics.enabled=false")
	if len(noMetrics.ofKind("Service")) != 0 {
		t.Error("metrics.enabled=false renders a Service")
	}
	if args := noMetrics.deployment().Spec.Template.Spec.Containers[0].Args; args[0] != "--metrics-bind-address=0" {
		t.Errorf("metrics.enabled=false: args %q", args)
	}
}
