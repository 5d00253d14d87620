package chart

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/election-manager/election-manager/internal/testutil"
)

func TestLintPassesWithDefaultAndEveryOptionalPart(t *testing.T) {
	t.Parallel()
	mustHelm(t, "lint", "--strict", chartDir)
	// podsSource needs the Pods source's role, which chartWithPodsRole supplies until it exists.
	mustHelm(t, "lint", "--strict", chartWithPodsRole(t), "-f", filepath.Join("testdata", "all-enabled.yaml"))
}

func TestSchemaRefusesUnknownAndMistypedValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		// want are regexps the error must match: the key it names, and why.
		want []string
	}{
		{"unknown top-level key", []string{"--set", "replica=3"},
			[]string{`additional properties? 'replica' not allowed`}},
		{"unknown nested key", []string{"--set", "metrics.serviceMonitor.enable=true"},
			[]string{`/metrics/serviceMonitor`, `additional properties? 'enable' not allowed`}},
		{"integer as string", []string{"--set-string", "replicas=two"},
			[]string{`/replicas`, `got string, want integer`}},
		{"boolean as string", []string{"--set-string", "crds.keep=yes"},
			[]string{`/crds/keep`, `got string, want boolean`}},
		{"scope outside its enum", []string{"--set", "rbac.scope=everywhere"},
			[]string{`/rbac/scope`, `'cluster', 'namespace'`}},
		{"namespace scope without namespaces", []string{"--set", "rbac.scope=namespace"},
			[]string{`/watchNamespaces`, `minItems`}},
		{"lock timing that is no duration", []string{"--set", "lock.leaseDuration=fifteen"},
			[]string{`/lock/leaseDuration`, `does not match pattern`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"template", "em", chartDir}, tc.args...)
			out, errOut, err := runHelm(t, args...)
			if err == nil {
				t.Fatalf("helm %s accepted the values:\n%s", strings.Join(args, " "), out)
			}
			for _, want := range tc.want {
				if !regexp.MustCompile(want).MatchString(errOut) {
					t.Errorf("the refusal does not match %q:\n%s", want, errOut)
				}
			}
		})
	}
}

// The chart's version and appVersion follow the project's VERSION in the Makefile.
func TestChartVersionIsTheProjectVersion(t *testing.T) {
	t.Parallel()
	makefile, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^VERSION \?= (\S+)$`).FindSubmatch(makefile)
	if m == nil {
		t.Fatal("the Makefile has no 'VERSION ?= ' line")
	}
	b, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct{ Version, AppVersion string }
	if err := yaml.Unmarshal(b, &chart); err != nil {
		t.Fatal(err)
	}
	if chart.Version != string(m[1]) || chart.AppVersion != string(m[1]) {
		t.Errorf("Chart.yaml has version %q, appVersion %q; the Makefile's VERSION is %q", chart.Version, chart.AppVersion, m[1])
	}
}
