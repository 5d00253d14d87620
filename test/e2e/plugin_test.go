package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/election-manager/election-manager/api/v1alpha1"
)

// runPlugin runs `kubectl leadergroup ...` with the plugin on PATH, as a user would.
func runPlugin(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(kubectl, append([]string{"leadergroup", "--kubeconfig", cp.Kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "PATH="+pluginDir+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestKubectlPlugin(t *testing.T) {
	c := newCluster(t)
	c.heldWithFollower(false)

	t.Run("handover", func(t *testing.T) {
		out, err := runPlugin(t, "handover", "payments", "-n", c.namespace, "--to", "manager-b", "--timeout", "10s")
		if err != nil || !regexp.MustCompile(`^manager-b leads e2e-\w+/payments \(epoch 2\): handed over in \d+(\.\d+)?m?s\n$`).MatchString(out) {
			t.Errorf("handover: %v\n%s", err, out)
		}
	})
	g := c.waitFor("payments", 5*time.Second, "two terms", func(g *v1alpha1.LeaderGroup) bool { return len(g.Status.History) == 2 })

	t.Run("status", func(t *testing.T) {
		out, err := runPlugin(t, "status", "payments", "-n", c.namespace)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		t.Logf("kubectl leadergroup status:\n%s", out)
		for _, want := range []string{
			"Holder:       " + g.Status.Holder,
			fmt.Sprintf("Epoch:        %d", g.Status.Transitions),
			"Candidates:   manager-a, manager-b",
			"PreferredHolder:  True (Honoured)",
			"Timings 6s/3s/1s mean:",
			"longest time without a leader after it crashes: 6s",
			"API-server outage a leader always survives: 2s",
		} {
			if !strings.Contains(squeeze(out), squeeze(want)) {
				t.Errorf("status does not say %q:\n%s", want, out)
			}
		}
		// One history row per entry, newest first, with the reasons and the gap.
		for _, e := range g.Status.History {
			row := fmt.Sprintf(`(?m)^%d\s+%s\s+\S+\s+\S+\s+%s\s+%s\s`, e.Transition, e.Holder, orDash(string(e.StartReason)), orDash(string(e.EndReason)))
			if !regexp.MustCompile(row).MatchString(out) {
				t.Errorf("status has no history row for %s/%d %s→%s:\n%s", e.Holder, e.Transition, e.StartReason, e.EndReason, out)
			}
		}
	})

	t.Run("history -o json", func(t *testing.T) {
		out, err := runPlugin(t, "history", "payments", "-n", c.namespace, "-o", "json")
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		var got []v1alpha1.HistoryEntry
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		want, _ := json.Marshal(g.Status.History)
		have, _ := json.Marshal(got)
		if string(want) != string(have) {
			t.Errorf("history -o json:\n%s\nstatus.history:\n%s", have, want)
		}
	})

	t.Run("history -o yaml", func(t *testing.T) {
		out, err := runPlugin(t, "history", "payments", "-n", c.namespace, "-o", "yaml")
		if err != nil || !strings.Contains(out, "startReason: Handover") {
			t.Errorf("history -o yaml: %v\n%s", err, out)
		}
	})

	t.Run("handover times out clearly", func(t *testing.T) {
		out, err := runPlugin(t, "handover", "payments", "-n", c.namespace, "--to", "nobody", "--timeout", "2s")
		if err == nil {
			t.Fatalf("exited 0 for a handover to a non-candidate:\n%s", out)
		}
		if !strings.Contains(out, "nobody does not lead") || !strings.Contains(out, "nobody is not a live candidate") {
			t.Errorf("the timeout does not say why:\n%s", out)
		}
	})
}

// squeeze folds runs of spaces, so that assertions do not depend on column widths.
func squeeze(s string) string {
	return regexp.MustCompile(` +`).ReplaceAllString(s, " ")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
