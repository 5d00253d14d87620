package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/testutil"
)

// These tests send LeaderGroups to a real kube-apiserver with the generated CRD
// installed: the schema and its CEL rules are the admission validation users get.

var k8s client.Client

func TestMain(m *testing.M) {
	os.Exit(func() int {
		cp, err := testutil.StartControlPlane()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer func() { _ = cp.Stop() }()
		scheme := runtime.NewScheme()
		if err := v1alpha1.AddToScheme(scheme); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if k8s, err = client.New(cp.Config, client.Options{Scheme: scheme}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}())
}

// group returns a LeaderGroup named name in default whose spec is specYAML.
func group(t *testing.T, name, specYAML string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{Object: map[string]any{}}
	doc := fmt.Sprintf("apiVersion: %s\nkind: LeaderGroup\nmetadata: {name: %s, namespace: default}\n", v1alpha1.GroupVersion, name)
	if specYAML != "" {
		doc += "spec:\n" + indent(specYAML)
	}
	if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
		t.Fatalf("bad test YAML: %v", err)
	}
	return obj
}

func indent(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := range lines {
		lines[i] = "  " + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

// create sends obj with strict field validation, as kubectl apply does.
func create(obj client.Object) error {
	return k8s.Create(context.Background(), obj, client.FieldValidation("Strict"))
}

// requireRefused asserts err is an admission refusal whose message names field and says want.
func requireRefused(t *testing.T, err error, field, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want refused on %s", field)
	}
	if !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) {
		t.Fatalf("refused for another reason: %v", err)
	}
	if !strings.Contains(err.Error(), field) || !strings.Contains(err.Error(), want) {
		t.Fatalf("message does not name %q with %q:\n%v", field, want, err)
	}
}

func TestAdmissionRefusesInvalidGroups(t *testing.T) {
	cases := []struct {
		name, spec, field, want string
	}{
		{"sub-second lease", "leaseDuration: 500ms\nrenewDeadline: 300ms\nretryPeriod: 100ms", "spec.leaseDuration", "at least 1s"},
		{"fractional lease", "leaseDuration: 1500ms\nrenewDeadline: 1s\nretryPeriod: 100ms", "spec.leaseDuration", "whole seconds"},
		{"zero lease", "leaseDuration: 0s", "spec.leaseDuration", "at least 1s"},
		{"lease not a duration", "leaseDuration: soon", "spec.leaseDuration", "should match"},
		{"negative lease", "leaseDuration: -15s", "spec.leaseDuration", "should match"},
		{"lease as a number", "leaseDuration: 15", "spec.leaseDuration", "must be of type string"},
		{"renew deadline in days", "renewDeadline: 1d", "spec.renewDeadline", "should match"},
		{"zero renew deadline", "renewDeadline: 0s", "spec.renewDeadline", "greater than 0"},
		{"zero retry period", "retryPeriod: 0s", "spec.retryPeriod", "greater than 0"},
		{"retry period not a duration", "retryPeriod: often", "spec.retryPeriod", "should match"},
		{"lease not above renew + retry", "leaseDuration: 12s\nrenewDeadline: 10s\nretryPeriod: 2s", "spec.leaseDuration", "greater than renewDeadline + retryPeriod"},
		{"lease below renew deadline", "leaseDuration: 5s\nrenewDeadline: 10s", "spec.leaseDuration", "greater than renewDeadline + retryPeriod"},
		{"renew deadline not above 1.2 x retry", "renewDeadline: 2400ms\nretryPeriod: 2s", "spec.renewDeadline", "1.2 × retryPeriod"},
		{"lease name not DNS-1123", "lease: {name: Payments_Lock}", "spec.lease.name", "should match"},
		{"lease name too long", "lease: {name: " + strings.Repeat("a", 254) + "}", "spec.lease.name", "may not be more than 253"},
		{"lease namespace not a label", "lease: {namespace: team.payments}", "spec.lease.namespace", "should match"},
		{"unknown source", "candidates: {source: Nodes}", "spec.candidates.source", "supported values"},
		{"pods without selector", "candidates: {source: Pods}", "spec.candidates.podSelector", "required when source is Pods"},
		{"selector with manager source", "candidates: {source: Manager, podSelector: {matchLabels: {app: a}}}", "spec.candidates.podSelector", "only allowed when source is Pods"},
		{"selector with external source", "candidates: {source: External, podSelector: {matchLabels: {app: a}}}", "spec.candidates.podSelector", "only allowed when source is Pods"},
		{"selector operator unknown", "candidates: {source: Pods, podSelector: {matchExpressions: [{key: app, operator: Equals, values: [a]}]}}", "spec.candidates.podSelector.matchExpressions", "must be one of In, NotIn, Exists, DoesNotExist"},
		{"selector In without values", "candidates: {source: Pods, podSelector: {matchExpressions: [{key: app, operator: In}]}}", "spec.candidates.podSelector.matchExpressions", "non-empty for In and NotIn"},
		{"selector Exists with values", "candidates: {source: Pods, podSelector: {matchExpressions: [{key: app, operator: Exists, values: [a]}]}}", "spec.candidates.podSelector.matchExpressions", "empty for Exists"},
		{"history limit zero", "historyLimit: 0", "spec.historyLimit", "greater than or equal to 1"},
		{"history limit above 100", "historyLimit: 101", "spec.historyLimit", "less than or equal to 100"},
		{"release on cancel not a bool", "releaseOnCancel: \"yes\"", "spec.releaseOnCancel", "must be of type boolean"},
		{"unknown field", "leaseDurationSeconds: 15", "spec.leaseDurationSeconds", "unknown field"},
		{"preferred holder with external source", "candidates: {source: External}\npreferredHolder: a", "spec.preferredHolder", "not allowed with source External"},
		{"empty preferred holder", "preferredHolder: \"\"", "spec.preferredHolder", "at least 1 chars long"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := group(t, fmt.Sprintf("invalid-%d", i), tc.spec)
			requireRefused(t, create(obj), tc.field, tc.want)
		})
	}
}

func TestAdmissionDefaultsAMinimalGroup(t *testing.T) {
	obj := group(t, "minimal", "")
	if err := create(obj); err != nil {
		t.Fatalf("a group with only metadata.name was refused: %v", err)
	}
	var got v1alpha1.LeaderGroup
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), &got); err != nil {
		t.Fatal(err)
	}
	s := got.Spec
	if s.LeaseDuration.Duration.String() != "15s" || s.RenewDeadline.Duration.String() != "10s" || s.RetryPeriod.Duration.String() != "2s" {
		t.Errorf("timings defaulted to %s/%s/%s, want 15s/10s/2s", s.LeaseDuration.Duration, s.RenewDeadline.Duration, s.RetryPeriod.Duration)
	}
	if s.Candidates.Source != v1alpha1.SourceManager {
		t.Errorf("source defaulted to %q, want Manager", s.Candidates.Source)
	}
	if s.ReleaseOnCancel == nil || !*s.ReleaseOnCancel {
		t.Errorf("releaseOnCancel defaulted to %v, want true", s.ReleaseOnCancel)
	}
	if s.HistoryLimit != 10 {
		t.Errorf("historyLimit defaulted to %d, want 10", s.HistoryLimit)
	}
	if s.Suspend || s.Lease != nil || s.Candidates.PodSelector != nil {
		t.Errorf("unexpected defaults: suspend=%v lease=%v podSelector=%v", s.Suspend, s.Lease, s.Candidates.PodSelector)
	}
}

func TestAdmissionAcceptsValidGroups(t *testing.T) {
	cases := []struct{ name, spec string }{
		{"client-go example timings", "leaseDuration: 60s\nrenewDeadline: 15s\nretryPeriod: 5s"},
		{"test timings", "leaseDuration: 6s\nrenewDeadline: 3s\nretryPeriod: 1s"},
		{"one second lease", "leaseDuration: 1s\nrenewDeadline: 500ms\nretryPeriod: 400ms"},
		{"minutes", "leaseDuration: 1m\nrenewDeadline: 40s\nretryPeriod: 10s"},
		{"explicit lease", "lease: {name: payments-scheduler.v2, namespace: default}"},
		{"pods", "candidates: {source: Pods, podSelector: {matchLabels: {app: payments}, matchExpressions: [{key: tier, operator: In, values: [web]}, {key: canary, operator: DoesNotExist}]}}"},
		{"external in another namespace", "candidates: {source: External}\nlease: {name: kube-scheduler, namespace: other}"},
		{"suspended, no release, long history", "suspend: true\nreleaseOnCancel: false\nhistoryLimit: 100"},
		{"preferred holder", "preferredHolder: manager-b"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := create(group(t, fmt.Sprintf("valid-%d", i), tc.spec)); err != nil {
				t.Fatalf("refused: %v", err)
			}
		})
	}
}

func TestAdmissionKeepsTheLeaseFixed(t *testing.T) {
	ctx := context.Background()
	withLease := group(t, "fixed-lease", "lease: {name: one}")
	withoutLease := group(t, "no-lease", "")
	for _, obj := range []*unstructured.Unstructured{withLease, withoutLease} {
		if err := create(obj); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name  string
		obj   *unstructured.Unstructured
		edit  func(spec map[string]any)
		field string
		want  string
	}{
		{"rename", withLease, func(s map[string]any) { s["lease"] = map[string]any{"name": "two"} }, "spec.lease", "immutable"},
		{"add a namespace", withLease, func(s map[string]any) { s["lease"] = map[string]any{"name": "one", "namespace": "default"} }, "spec.lease", "immutable"},
		{"remove", withLease, func(s map[string]any) { delete(s, "lease") }, "spec.lease", "cannot be added or removed"},
		{"add", withoutLease, func(s map[string]any) { s["lease"] = map[string]any{"name": "no-lease"} }, "spec.lease", "cannot be added or removed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := tc.obj.DeepCopy()
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
				t.Fatal(err)
			}
			spec := obj.Object["spec"].(map[string]any)
			tc.edit(spec)
			requireRefused(t, k8s.Update(ctx, obj), tc.field, tc.want)
		})
	}
	t.Run("timings may change", func(t *testing.T) {
		obj := withLease.DeepCopy()
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			t.Fatal(err)
		}
		obj.Object["spec"].(map[string]any)["leaseDuration"] = "20s"
		if err := k8s.Update(ctx, obj); err != nil {
			t.Fatalf("changing leaseDuration was refused: %v", err)
		}
	})
}

// Who competes is fixed at creation: a switch would hand a Lease held under one
// source's rules to another's (a Pods group taking it from a running elector).
func TestAdmissionKeepsTheSourceFixed(t *testing.T) {
	ctx := context.Background()
	manager := group(t, "source-manager", "")
	pods := group(t, "source-pods", "candidates: {source: Pods, podSelector: {matchLabels: {app: a}}}")
	external := group(t, "source-external", "candidates: {source: External}")
	for _, obj := range []*unstructured.Unstructured{manager, pods, external} {
		if err := create(obj); err != nil {
			t.Fatal(err)
		}
	}
	toPods := map[string]any{"source": "Pods", "podSelector": map[string]any{"matchLabels": map[string]any{"app": "a"}}}
	refused := []struct {
		name string
		obj  *unstructured.Unstructured
		edit func(spec map[string]any)
	}{
		{"Manager to Pods", manager, func(s map[string]any) { s["candidates"] = toPods }},
		{"Manager to External", manager, func(s map[string]any) { s["candidates"] = map[string]any{"source": "External"} }},
		{"External to Pods", external, func(s map[string]any) { s["candidates"] = toPods }},
		{"Pods to Manager", pods, func(s map[string]any) { s["candidates"] = map[string]any{"source": "Manager"} }},
		{"Pods to the default by removing candidates", pods, func(s map[string]any) { delete(s, "candidates") }},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			obj := tc.obj.DeepCopy()
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
				t.Fatal(err)
			}
			tc.edit(obj.Object["spec"].(map[string]any))
			requireRefused(t, k8s.Update(ctx, obj), "spec.candidates.source", "immutable")
		})
	}
	t.Run("the pod selector may change", func(t *testing.T) {
		obj := pods.DeepCopy()
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			t.Fatal(err)
		}
		obj.Object["spec"].(map[string]any)["candidates"] = map[string]any{"source": "Pods",
			"podSelector": map[string]any{"matchLabels": map[string]any{"app": "b"}}}
		if err := k8s.Update(ctx, obj); err != nil {
			t.Fatalf("changing the podSelector was refused: %v", err)
		}
	})
	t.Run("the same source spelled out", func(t *testing.T) {
		obj := manager.DeepCopy()
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			t.Fatal(err)
		}
		obj.Object["spec"].(map[string]any)["candidates"] = map[string]any{"source": "Manager"}
		obj.Object["spec"].(map[string]any)["historyLimit"] = int64(20)
		if err := k8s.Update(ctx, obj); err != nil {
			t.Fatalf("an update keeping the source was refused: %v", err)
		}
	})
}
