package chart

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/election-manager/election-manager/internal/testutil"
)

// managerRules collects what the manager's ServiceAccount is granted, from the
// bindings that name it: cluster-wide rules, and namespaced rules by namespace.
func (r *rendered) managerRules(sa string) (cluster []rbacv1.PolicyRule, namespaced map[string][]rbacv1.PolicyRule) {
	r.t.Helper()
	namespaced = map[string][]rbacv1.PolicyRule{}
	boundTo := func(subjects []rbacv1.Subject) bool {
		return slices.Contains(subjects, rbacv1.Subject{Kind: "ServiceAccount", Name: sa, Namespace: releaseNS})
	}
	for _, u := range r.ofKind("ClusterRoleBinding") {
		var b rbacv1.ClusterRoleBinding
		r.mustGet(u.GetKind(), "", u.GetName(), &b)
		if boundTo(b.Subjects) {
			var role rbacv1.ClusterRole
			r.mustGet(b.RoleRef.Kind, "", b.RoleRef.Name, &role)
			cluster = append(cluster, role.Rules...)
		}
	}
	for _, u := range r.ofKind("RoleBinding") {
		var b rbacv1.RoleBinding
		r.mustGet(u.GetKind(), u.GetNamespace(), u.GetName(), &b)
		if boundTo(b.Subjects) {
			if b.RoleRef.Kind != "Role" {
				r.t.Errorf("RoleBinding %s/%s refers to a %s", b.Namespace, b.Name, b.RoleRef.Kind)
				continue
			}
			var role rbacv1.Role
			r.mustGet("Role", b.Namespace, b.RoleRef.Name, &role)
			namespaced[b.Namespace] = append(namespaced[b.Namespace], role.Rules...)
		}
	}
	return cluster, namespaced
}

// generatedRules reads a controller-gen role file.
func generatedRules(t *testing.T, path string) []rbacv1.PolicyRule {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(b, &role); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return role.Rules
}

func isAuthReview(r rbacv1.PolicyRule) bool {
	return len(r.NonResourceURLs) == 0 && len(r.APIGroups) == 1 &&
		(r.APIGroups[0] == "authentication.k8s.io" || r.APIGroups[0] == "authorization.k8s.io")
}

func TestRenderClusterScopeRBAC(t *testing.T) {
	t.Parallel()
	r := render(t, chartDir)
	cluster, namespaced := r.managerRules(fullname)
	if len(r.ofKind("Role")) != 0 || len(r.ofKind("RoleBinding")) != 0 || len(namespaced) != 0 {
		t.Errorf("cluster scope renders Roles or RoleBindings: %v", r.ids())
	}
	want := generatedRules(t, filepath.Join(testutil.RepoRoot(), "config", "rbac", "role.yaml"))
	if !reflect.DeepEqual(cluster, want) {
		t.Errorf("the manager's ClusterRole rules are not config/rbac/role.yaml's:\n got %+v\nwant %+v", cluster, want)
	}
}

func TestRenderNamespaceScopeRBAC(t *testing.T) {
	t.Parallel()
	var namespacedRules, leaseRules, readLeaseRules []rbacv1.PolicyRule
	for _, rule := range generatedRules(t, filepath.Join(testutil.RepoRoot(), "config", "rbac", "role.yaml")) {
		if isAuthReview(rule) {
			continue
		}
		namespacedRules = append(namespacedRules, rule)
		if reflect.DeepEqual(rule.APIGroups, []string{"coordination.k8s.io"}) && reflect.DeepEqual(rule.Resources, []string{"leases"}) {
			leaseRules = append(leaseRules, rule)
			read := rule
			read.Verbs = slices.DeleteFunc(slices.Clone(rule.Verbs), func(v string) bool { return v != "get" && v != "list" && v != "watch" })
			readLeaseRules = append(readLeaseRules, read)
		}
	}
	if len(leaseRules) == 0 || len(readLeaseRules[0].Verbs) != 3 {
		t.Fatalf("config/rbac/role.yaml grants no get, list and watch on leases; this test expects them: %+v", namespacedRules)
	}

	for name, tc := range map[string]struct {
		watch, external []string
		// want is each namespace's Role rules.
		want map[string][]rbacv1.PolicyRule
	}{
		"release namespace not watched": {
			watch: []string{"team-a", "team-b"},
			want:  map[string][]rbacv1.PolicyRule{releaseNS: leaseRules, "team-a": namespacedRules, "team-b": namespacedRules},
		},
		"release namespace watched": {
			watch: []string{"team-a", releaseNS},
			want:  map[string][]rbacv1.PolicyRule{releaseNS: namespacedRules, "team-a": namespacedRules},
		},
		"external lease namespaces": {
			watch: []string{"team-a"}, external: []string{"shared", "team-a", releaseNS},
			want: map[string][]rbacv1.PolicyRule{releaseNS: leaseRules, "team-a": namespacedRules, "shared": readLeaseRules},
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			args := []string{"--set", "rbac.scope=namespace", "--set", "watchNamespaces={" + strings.Join(tc.watch, ",") + "}"}
			if tc.external != nil {
				args = append(args, "--set", "externalLeaseNamespaces={"+strings.Join(tc.external, ",")+"}")
			}
			r := render(t, chartDir, args...)

			var got []string
			for _, kind := range []string{"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"} {
				for _, u := range r.ofKind(kind) {
					got = append(got, describe(u))
				}
			}
			sort.Strings(got)
			var want []string
			for ns := range tc.want {
				want = append(want, "Role "+ns+"/"+fullname, "RoleBinding "+ns+"/"+fullname)
			}
			want = append(want,
				"ClusterRole "+fullname+"-auth", "ClusterRoleBinding "+fullname+"-auth",
				"ClusterRole "+fullname+"-leadergroup-editor", "ClusterRole "+fullname+"-leadergroup-viewer",
				"ClusterRole "+fullname+"-metrics-reader")
			sort.Strings(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("RBAC objects:\n got %v\nwant %v", got, want)
			}

			cluster, namespaced := r.managerRules(fullname)
			if len(cluster) == 0 {
				t.Error("no cluster-wide rules: the metrics endpoint cannot review tokens")
			}
			for _, rule := range cluster {
				if !isAuthReview(rule) || !reflect.DeepEqual(rule.Verbs, []string{"create"}) {
					t.Errorf("namespace scope grants a cluster-wide rule other than tokenreviews/subjectaccessreviews create: %+v", rule)
				}
			}
			for ns, rules := range tc.want {
				if !reflect.DeepEqual(namespaced[ns], rules) {
					t.Errorf("Role in %s:\n got %+v\nwant %+v", ns, namespaced[ns], rules)
				}
			}
			args = r.deployment().Spec.Template.Spec.Containers[0].Args
			if !slices.Contains(args, "--namespaces="+strings.Join(tc.watch, ",")) {
				t.Errorf("args %q do not pass --namespaces", args)
			}
			if tc.external != nil && !slices.Contains(args, "--external-lease-namespaces="+strings.Join(tc.external, ",")) {
				t.Errorf("args %q do not pass --external-lease-namespaces", args)
			}
		})
	}
}

func TestRenderNoWildcardInAnyRule(t *testing.T) {
	t.Parallel()
	chart := chartWithPodsRole(t)
	for _, args := range [][]string{
		nil,
		{"--set", "podsSource.enabled=true"},
		{"--set", "rbac.scope=namespace", "--set", "watchNamespaces={a,b}", "--set", "podsSource.enabled=true"},
		{"-f", filepath.Join("testdata", "all-enabled.yaml")},
	} {
		r := render(t, chart, args...)
		for _, u := range append(r.ofKind("ClusterRole"), r.ofKind("Role")...) {
			var role rbacv1.ClusterRole // Role has the same rules field
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &role); err != nil {
				t.Fatal(err)
			}
			for _, rule := range role.Rules {
				for _, field := range [][]string{rule.APIGroups, rule.Resources, rule.Verbs, rule.ResourceNames, rule.NonResourceURLs} {
					if slices.ContainsFunc(field, func(s string) bool { return strings.Contains(s, "*") }) {
						t.Errorf("%v: %s has a wildcard rule: %+v", args, describe(u), rule)
					}
				}
			}
		}
	}
}

func TestRenderPodsPermissionsOnlyWithPodsSource(t *testing.T) {
	t.Parallel()
	grantsPods := func(rules []rbacv1.PolicyRule) bool {
		return slices.ContainsFunc(rules, func(r rbacv1.PolicyRule) bool { return slices.Contains(r.Resources, "pods") })
	}
	chart := chartWithPodsRole(t)
	podsRules := generatedRules(t, filepath.Join(chart, podsRoleFile))

	cluster, _ := render(t, chart).managerRules(fullname)
	if grantsPods(cluster) {
		t.Errorf("pods are granted without podsSource.enabled: %+v", cluster)
	}
	for enabled, want := range map[string]bool{"false": false, "true": true} {
		args := render(t, chart, "--set", "podsSource.enabled="+enabled).deployment().Spec.Template.Spec.Containers[0].Args
		if slices.Contains(args, "--pods-source") != want {
			t.Errorf("podsSource.enabled=%s: manager args %v", enabled, args)
		}
	}
	cluster, _ = render(t, chart, "--set", "podsSource.enabled=true").managerRules(fullname)
	for _, rule := range podsRules {
		if !slices.ContainsFunc(cluster, func(r rbacv1.PolicyRule) bool { return reflect.DeepEqual(r, rule) }) {
			t.Errorf("podsSource.enabled does not grant %+v; the ClusterRole has %+v", rule, cluster)
		}
	}

	nsArgs := []string{"--set", "rbac.scope=namespace", "--set", "watchNamespaces={team-a}"}
	cluster, namespaced := render(t, chart, nsArgs...).managerRules(fullname)
	if grantsPods(cluster) || grantsPods(namespaced["team-a"]) {
		t.Errorf("namespace scope grants pods without podsSource.enabled")
	}
	cluster, namespaced = render(t, chart, append(nsArgs, "--set", "podsSource.enabled=true")...).managerRules(fullname)
	if grantsPods(cluster) {
		t.Errorf("namespace scope grants pods cluster-wide: %+v", cluster)
	}
	if !grantsPods(namespaced["team-a"]) {
		t.Errorf("namespace scope with podsSource.enabled grants no pods in the served namespace: %+v", namespaced["team-a"])
	}
	if grantsPods(namespaced[releaseNS]) {
		t.Errorf("pods are granted in the release namespace, which it does not serve: %+v", namespaced[releaseNS])
	}

	if chart != chartDir {
		// The real chart has no Pods-source role yet: enabling the source must say so,
		// not install a manager that cannot read pods.
		_, errOut, err := runHelm(t, "template", release, chartDir, "--set", "podsSource.enabled=true")
		if err == nil || !strings.Contains(errOut, "no files/rbac/pods-role.yaml") {
			t.Errorf("podsSource.enabled without a Pods-source role: err %v\n%s", err, errOut)
		}
	}
}

func TestRenderUserRolesMatchConfigRBAC(t *testing.T) {
	t.Parallel()
	r := render(t, chartDir)
	for suffix, file := range map[string]string{
		"-leadergroup-editor": "leadergroup_editor_role.yaml",
		"-leadergroup-viewer": "leadergroup_viewer_role.yaml",
	} {
		var role rbacv1.ClusterRole
		r.mustGet("ClusterRole", "", fullname+suffix, &role)
		want := generatedRules(t, filepath.Join(testutil.RepoRoot(), "config", "rbac", file))
		if !reflect.DeepEqual(role.Rules, want) {
			t.Errorf("%s rules differ from config/rbac/%s:\n got %+v\nwant %+v", role.Name, file, role.Rules, want)
		}
		for _, b := range r.ofKind("ClusterRoleBinding") {
			if strings.Contains(b.GetName(), suffix) {
				t.Errorf("%s is bound by the chart; it is for aggregation only", role.Name)
			}
		}
	}
	if r := render(t, chartDir, "--set", "rbac.aggregateToDefaultRoles=false"); r.get("ClusterRole", "", fullname+"-leadergroup-editor", &rbacv1.ClusterRole{}) {
		t.Error("rbac.aggregateToDefaultRoles=false still renders the user roles")
	}
}
