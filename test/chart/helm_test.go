// Package chart tests the Helm chart in charts/election-manager with the pinned helm
// binary: lint and schema, rendered manifests parsed into Kubernetes objects, and
// install, upgrade and uninstall against a real kube-apiserver and etcd.
package chart

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/election-manager/election-manager/internal/testutil"
)

// chartDir is the chart under test.
var chartDir = filepath.Join(testutil.RepoRoot(), "charts", "election-manager")

// helmBin is the pinned helm: $HELM (make test exports it), else the one bin/helm-*.
func helmBin(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("HELM"); bin != "" {
		return bin
	}
	matches, _ := filepath.Glob(filepath.Join(testutil.RepoRoot(), "bin", "helm-v*"))
	if len(matches) != 1 {
		t.Fatalf("found %d helm binaries under bin/, want 1: run 'make helm' or set HELM", len(matches))
	}
	return matches[0]
}

// runHelm runs helm with its own empty config, cache and data folders, so that no
// user setting or repository leaks in, and returns stdout and stderr apart.
func runHelm(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helmBin(t), args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		// Only commands given --kubeconfig reach a cluster.
		"KUBECONFIG="+filepath.Join(home, "no-kubeconfig"),
	)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// mustHelm runs helm and fails the test on an error.
func mustHelm(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := runHelm(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// parseManifests splits a multi-document YAML stream into objects.
func parseManifests(t *testing.T, manifests string) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifests), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs
			}
			t.Fatalf("parsing the rendered manifests: %v\n%s", err, manifests)
		}
		if m != nil {
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
}

// copyChart copies the chart to a temporary folder, for tests that change its files.
func copyChart(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "election-manager")
	err := filepath.WalkDir(chartDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(chartDir, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatalf("copying the chart: %v", err)
	}
	return dst
}

// podsRoleFile is where `make manifests` copies the Pods source's generated role.
const podsRoleFile = "files/rbac/pods-role.yaml"

// chartWithPodsRole returns a chart that has a Pods-source role: the real chart once
// the Pods source's markers generate one, until then a copy with
// testdata/pods-role.yaml (shaped as controller-gen writes it) in its place.
func chartWithPodsRole(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(chartDir, podsRoleFile)); err == nil {
		return chartDir
	}
	dir := copyChart(t)
	b, err := os.ReadFile(filepath.Join("testdata", "pods-role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, podsRoleFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func describe(u *unstructured.Unstructured) string {
	if ns := u.GetNamespace(); ns != "" {
		return fmt.Sprintf("%s %s/%s", u.GetKind(), ns, u.GetName())
	}
	return fmt.Sprintf("%s %s", u.GetKind(), u.GetName())
}
