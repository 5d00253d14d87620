package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const kubeconfigTemplate = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: ctx, context: {cluster: c, user: u, namespace: NAMESPACE}}]
current-context: ctx
`

func TestCompleteResolvesTheLockNamespace(t *testing.T) {
	cases := []struct{ contextNamespace, flag, want string }{
		{contextNamespace: "team-a", want: "team-a"},
		{contextNamespace: `""`, want: "default"},
		{contextNamespace: "team-a", flag: "locks", want: "locks"},
	}
	for _, tc := range cases {
		path := filepath.Join(t.TempDir(), "kubeconfig")
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(kubeconfigTemplate, "NAMESPACE", tc.contextNamespace)), 0o600); err != nil {
			t.Fatal(err)
		}
		o := NewOptions()
		o.Kubeconfig, o.Lock.Namespace = path, tc.flag
		if _, err := o.Complete(); err != nil {
			t.Fatal(err)
		}
		if o.Lock.Namespace != tc.want {
			t.Errorf("context namespace %s, --lock-namespace %q: resolved %q, want %q", tc.contextNamespace, tc.flag, o.Lock.Namespace, tc.want)
		}
	}
}

func TestCompleteGivesEachProcessItsOwnID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(kubeconfigTemplate, "NAMESPACE", "default")), 0o600); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	ids := map[string]bool{}
	for range 20 {
		o := NewOptions()
		o.Kubeconfig = path
		if _, err := o.Complete(); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(o.ID, strings.ToLower(host)+"-") {
			t.Errorf("id %q does not start with the hostname %q", o.ID, host)
		}
		if err := o.Validate(); err != nil {
			t.Errorf("the default id is invalid: %v", err)
		}
		ids[o.ID] = true
	}
	if len(ids) != 20 {
		t.Errorf("20 processes got %d distinct ids", len(ids))
	}
}

func TestValidateAcceptsTheDefaults(t *testing.T) {
	if err := NewOptions().Validate(); err != nil {
		t.Fatal(err)
	}
}
