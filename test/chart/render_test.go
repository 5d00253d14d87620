package chart

import (
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

const (
	release   = "em"
	releaseNS = "em-system"
	fullname  = "em-election-manager"
)

// rendered is `helm template` output, parsed.
type rendered struct {
	t    *testing.T
	objs []*unstructured.Unstructured
}

// render runs helm template for release em in namespace em-system. Every object of a
// built-in kind must decode into its Go type with no unknown field.
func render(t *testing.T, chart string, args ...string) *rendered {
	t.Helper()
	out := mustHelm(t, append([]string{"template", release, chart, "--namespace", releaseNS}, args...)...)
	r := &rendered{t: t, objs: parseManifests(t, out)}
	for _, u := range r.objs {
		obj, err := clientgoscheme.Scheme.New(u.GroupVersionKind())
		if err != nil {
			continue // CRDs and prometheus-operator kinds: checked field by field below.
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, obj, true); err != nil {
			t.Errorf("%s does not decode as %T: %v", describe(u), obj, err)
		}
	}
	return r
}

// ids lists "Kind namespace/name" of every object, sorted.
func (r *rendered) ids() []string {
	var out []string
	for _, u := range r.objs {
		out = append(out, describe(u))
	}
	sort.Strings(out)
	return out
}

func (r *rendered) ofKind(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, u := range r.objs {
		if u.GetKind() == kind {
			out = append(out, u)
		}
	}
	return out
}

// get finds one object and decodes it into into (a typed object or *unstructured).
func (r *rendered) get(kind, namespace, name string, into any) bool {
	r.t.Helper()
	for _, u := range r.objs {
		if u.GetKind() == kind && u.GetNamespace() == namespace && u.GetName() == name {
			if p, ok := into.(*unstructured.Unstructured); ok {
				*p = *u
				return true
			}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into); err != nil {
				r.t.Fatalf("decoding %s: %v", describe(u), err)
			}
			return true
		}
	}
	return false
}

func (r *rendered) mustGet(kind, namespace, name string, into any) {
	r.t.Helper()
	if !r.get(kind, namespace, name, into) {
		r.t.Fatalf("no %s %s/%s in the rendered chart; it has %v", kind, namespace, name, r.ids())
	}
}

func (r *rendered) deployment() *appsv1.Deployment {
	r.t.Helper()
	var d appsv1.Deployment
	r.mustGet("Deployment", releaseNS, fullname, &d)
	return &d
}

func TestRenderDefaults(t *testing.T) {
	t.Parallel()
	r := render(t, chartDir)

	want := []string{
		"ClusterRole " + fullname,
		"ClusterRole " + fullname + "-leadergroup-editor",
		"ClusterRole " + fullname + "-leadergroup-viewer",
		"ClusterRole " + fullname + "-metrics-reader",
		"ClusterRoleBinding " + fullname,
		"CustomResourceDefinition leadergroups.coordination.electionmanager.dev",
		"Deployment " + releaseNS + "/" + fullname,
		"PodDisruptionBudget " + releaseNS + "/" + fullname,
		"Service " + releaseNS + "/" + fullname + "-metrics",
		"ServiceAccount " + releaseNS + "/" + fullname,
	}
	if got := r.ids(); !reflect.DeepEqual(got, want) {
		t.Errorf("objects:\n got %v\nwant %v", got, want)
	}

	d := r.deployment()
	if *d.Spec.Replicas != 2 {
		t.Errorf("replicas = %d, want 2", *d.Spec.Replicas)
	}
	pod := d.Spec.Template.Spec
	if pod.ServiceAccountName != fullname || *pod.TerminationGracePeriodSeconds != 30 {
		t.Errorf("serviceAccountName %q, terminationGracePeriodSeconds %d", pod.ServiceAccountName, *pod.TerminationGracePeriodSeconds)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if c.Image != "ghcr.io/election-manager/election-manager:0.1.0" || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("image %q, pull policy %q: want the chart's appVersion", c.Image, c.ImagePullPolicy)
	}
	wantArgs := []string{
		"--metrics-bind-address=:8443",
		"--health-probe-bind-address=:8081",
		"--lock-name=" + fullname,
		"--lock-namespace=" + releaseNS,
		"--lock-lease-duration=15s",
		"--lock-renew-deadline=10s",
		"--lock-retry-period=2s",
		"--zap-log-level=info",
		"--zap-encoder=json",
	}
	if !reflect.DeepEqual(c.Args, wantArgs) {
		t.Errorf("args:\n got %q\nwant %q", c.Args, wantArgs)
	}
	if len(c.Env) != 1 || c.Env[0].Name != "POD_NAMESPACE" || c.Env[0].ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
		t.Errorf("env = %+v, want POD_NAMESPACE from metadata.namespace", c.Env)
	}
	if p := c.LivenessProbe.HTTPGet; p.Path != "/healthz" || p.Port.String() != "health" {
		t.Errorf("liveness probe %s on %s", p.Path, p.Port.String())
	}
	if p := c.ReadinessProbe.HTTPGet; p.Path != "/readyz" || p.Port.String() != "health" {
		t.Errorf("readiness probe %s on %s", p.Path, p.Port.String())
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if !reflect.DeepEqual(ports, map[string]int32{"metrics": 8443, "health": 8081}) {
		t.Errorf("container ports = %v", ports)
	}
	if c.Resources.Requests.Cpu().String() != "10m" || c.Resources.Limits.Memory().String() != "256Mi" {
		t.Errorf("resources = %+v", c.Resources)
	}
	terms := pod.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution
	if len(terms) != 1 || terms[0].PodAffinityTerm.TopologyKey != "kubernetes.io/hostname" ||
		!reflect.DeepEqual(terms[0].PodAffinityTerm.LabelSelector.MatchLabels, d.Spec.Selector.MatchLabels) {
		t.Errorf("pod anti-affinity = %+v, want preferred, per hostname, on the pods' selector", pod.Affinity.PodAntiAffinity)
	}

	var pdb policyv1.PodDisruptionBudget
	r.mustGet("PodDisruptionBudget", releaseNS, fullname, &pdb)
	if pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil ||
		!reflect.DeepEqual(pdb.Spec.Selector.MatchLabels, d.Spec.Selector.MatchLabels) {
		t.Errorf("PodDisruptionBudget spec = %+v", pdb.Spec)
	}

	var svc corev1.Service
	r.mustGet("Service", releaseNS, fullname+"-metrics", &svc)
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8443 || svc.Spec.Ports[0].TargetPort.String() != "metrics" ||
		!reflect.DeepEqual(svc.Spec.Selector, d.Spec.Selector.MatchLabels) {
		t.Errorf("metrics Service spec = %+v", svc.Spec)
	}
}

func TestRenderRestrictedSecurityContext(t *testing.T) {
	t.Parallel()
	for name, args := range map[string][]string{
		"defaults":    nil,
		"all enabled": {"-f", filepath.Join("testdata", "all-enabled.yaml")},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pod := render(t, chartWithPodsRole(t), args...).deployment().Spec.Template.Spec
			if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot ||
				psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod securityContext = %+v", psc)
			}
			if pod.HostNetwork || pod.HostPID || pod.HostIPC || len(pod.Volumes) != 0 {
				t.Errorf("the pod uses host namespaces or volumes: %+v", pod)
			}
			for _, c := range pod.Containers {
				sc := c.SecurityContext
				if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
					sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
					sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.Privileged != nil ||
					sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
					t.Errorf("container %s securityContext = %+v", c.Name, sc)
				}
			}
		})
	}
}

func TestRenderReplicasAndDisruptionBudget(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args     []string
		replicas int32
		pdb      string // "" when there must be none
	}{
		{[]string{"--set", "replicas=1"}, 1, ""},
		{[]string{"--set", "replicas=3"}, 3, "maxUnavailable=1"},
		{[]string{"--set", "replicas=3", "--set", "podDisruptionBudget.minAvailable=2"}, 3, "minAvailable=2"},
		{[]string{"--set", "podDisruptionBudget.enabled=false"}, 2, ""},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			r := render(t, chartDir, tc.args...)
			if got := *r.deployment().Spec.Replicas; got != tc.replicas {
				t.Errorf("replicas = %d, want %d", got, tc.replicas)
			}
			var pdb policyv1.PodDisruptionBudget
			found := r.get("PodDisruptionBudget", releaseNS, fullname, &pdb)
			switch {
			case tc.pdb == "" && found:
				t.Errorf("a PodDisruptionBudget is rendered: %+v", pdb.Spec)
			case tc.pdb == "maxUnavailable=1" && (!found || pdb.Spec.MaxUnavailable.IntValue() != 1 || pdb.Spec.MinAvailable != nil):
				t.Errorf("PodDisruptionBudget found=%v spec=%+v, want maxUnavailable 1", found, pdb.Spec)
			case tc.pdb == "minAvailable=2" && (!found || pdb.Spec.MinAvailable.IntValue() != 2 || pdb.Spec.MaxUnavailable != nil):
				t.Errorf("PodDisruptionBudget found=%v spec=%+v, want minAvailable 2", found, pdb.Spec)
			}
		})
	}
}
