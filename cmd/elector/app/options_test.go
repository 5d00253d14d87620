package app

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func parse(t *testing.T, args ...string) *Options {
	t.Helper()
	o := NewOptions()
	fs := flag.NewFlagSet("elector", flag.ContinueOnError)
	o.BindFlags(fs)
	if err := o.Parse(fs, args); err != nil {
		t.Fatal(err)
	}
	return o
}

func TestElectorOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string // substrings of the error; none: valid
	}{
		{"group", []string{"--group", "payments"}, nil},
		{"group with a command", []string{"--group", "payments", "--", "sh", "-c", "true"}, nil},
		{"command without --", []string{"--group", "payments", "sh", "-c", "true"}, nil},
		{"lock flags", []string{"--lock-name", "l", "--lease-duration=6s", "--renew-deadline=3s", "--retry-period=1s"}, nil},
		{"neither", nil, []string{"--group or --lock-name is required"}},
		{"group and lock flags", []string{"--group", "g", "--lock-name", "l", "--retry-period=1s"},
			[]string{"--lock-name cannot be used with --group", "--retry-period cannot be used with --group"}},
		{"bad names", []string{"--group", "Bad_Name", "--namespace", "x.y"}, []string{`--group "Bad_Name"`, `--namespace "x.y"`}},
		{"fractional lease duration", []string{"--lock-name", "l", "--lease-duration=6500ms", "--renew-deadline=3s", "--retry-period=1s"},
			[]string{"--lease-duration 6.5s: must be whole seconds"}},
		{"lease duration too short", []string{"--lock-name", "l", "--lease-duration=4s", "--renew-deadline=3s", "--retry-period=1s"},
			[]string{"--lease-duration 4s: must be greater than --renew-deadline + --retry-period (4s)"}},
		{"renew deadline too short", []string{"--lock-name", "l", "--lease-duration=6s", "--renew-deadline=1s", "--retry-period=1s"},
			[]string{"--renew-deadline 1s: must be greater than 1.2 × --retry-period (1.2s)"}},
		{"child flags without a child", []string{"--group", "g", "--grace-period=1s", "--restart-child"},
			[]string{"--grace-period needs a command", "--restart-child needs a command"}},
		{"unknown command", []string{"--group", "g", "--", "/no/such/command"}, []string{`command "/no/such/command"`}},
		{"health command", []string{"--group", "g", "--health-command", "true", "--health-period=200ms", "--health-failures=2",
			"--step-down-backoff=30s", "--", "sh"}, nil},
		{"health url", []string{"--group", "g", "--health-url", "http://127.0.0.1:8080/healthz", "--health-timeout=5s", "--", "sh"}, nil},
		{"both health checks", []string{"--group", "g", "--health-command", "true", "--health-url", "http://127.0.0.1/", "--", "sh"},
			[]string{"--health-command and --health-url cannot be used together"}},
		{"health check without a child", []string{"--group", "g", "--health-command", "true"},
			[]string{"--health-command and --health-url check a child: they need a command"}},
		{"health flags without a check", []string{"--group", "g", "--health-period=1s", "--step-down-backoff=1m", "--", "sh"},
			[]string{"--health-period needs --health-command or --health-url", "--step-down-backoff needs --health-command or --health-url"}},
		{"bad health values", []string{"--group", "g", "--health-url", "127.0.0.1:8080/healthz", "--health-period=0s", "--health-timeout=-1s",
			"--health-failures=0", "--step-down-backoff=-1s", "--", "sh"},
			[]string{`--health-url "127.0.0.1:8080/healthz": must be an absolute http or https URL`, "--health-period 0s: must be positive",
				"--health-timeout -1s: must be at most --health-period", "--health-failures 0: must be at least 1", "--step-down-backoff -1s: must not be negative"}},
		{"health timeout over the period", []string{"--group", "g", "--health-command", "true", "--health-period=1s", "--health-timeout=2s", "--", "sh"},
			[]string{"--health-timeout 2s: must be at most --health-period (1s)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := parse(t, tc.args...).Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("valid, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestElectorOptionsParseKeepsTheCommand(t *testing.T) {
	o := parse(t, "--group", "g", "--", "worker", "--flag", "-x")
	if got := strings.Join(o.Command, " "); got != "worker --flag -x" {
		t.Errorf("command %q", got)
	}
}

func TestElectorOptionsComplete(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: team-a}}]
current-context: x
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	getenv = func(k string) string { return env[k] }
	t.Cleanup(func() { getenv = os.Getenv })

	o := parse(t, "--kubeconfig", kubeconfig, "--lock-name", "l")
	cfg, err := o.Complete()
	if err != nil {
		t.Fatal(err)
	}
	if o.Namespace != "team-a" || o.LockNamespace != "team-a" {
		t.Errorf("namespace %q, lock namespace %q: want the context's, team-a", o.Namespace, o.LockNamespace)
	}
	if cfg.QPS >= 0 {
		t.Errorf("QPS %v: renewals must not be rate-limited on the client", cfg.QPS)
	}
	host, _ := os.Hostname()
	if !strings.HasPrefix(o.ID, strings.ToLower(host)+"-") || len(o.ID) != len(host)+6 {
		t.Errorf("identity %q: want the hostname and a 5-character suffix", o.ID)
	}

	env["POD_NAME"], env["POD_NAMESPACE"] = "web-7f9c", "prod"
	a, b := parse(t, "--kubeconfig", kubeconfig, "--lock-name", "l"), parse(t, "--kubeconfig", kubeconfig, "--lock-name", "l")
	for _, o := range []*Options{a, b} {
		if _, err := o.Complete(); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(o.ID, "web-7f9c-") || o.Namespace != "prod" {
			t.Errorf("identity %q, namespace %q: want POD_NAME plus a suffix, POD_NAMESPACE", o.ID, o.Namespace)
		}
	}
	if a.ID == b.ID {
		t.Errorf("two processes got one identity %q", a.ID)
	}
}
