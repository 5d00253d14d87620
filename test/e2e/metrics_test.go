package e2e

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/election-manager/election-manager/internal/testutil"
)

// The manager's election metrics, scraped from the running binary: its own electors
// (is_leader), its role (status_writer) and what it observes as the writer.
func TestManagerExportsElectionMetrics(t *testing.T) {
	c := newCluster(t)
	port := testutil.FreePort(t)
	c.startManager("manager-a", false, fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", port), "--metrics-secure=false")
	c.group("payments")
	c.waitFor("payments", 10*time.Second, "held by manager-a", heldBy("manager-a"))

	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	labels := fmt.Sprintf(`leadergroup="payments",namespace="%s"`, c.namespace)
	for _, want := range []string{
		`election_manager_status_writer 1`,
		`election_manager_is_leader{` + labels + `} 1`,
		`election_manager_group_has_leader{` + labels + `} 1`,
		`election_manager_group_transitions_total{` + labels + `} 1`,
	} {
		waitForMetric(t, url, want)
	}
}

// waitForMetric polls the manager's metrics until a line reads want.
func waitForMetric(t *testing.T, url, want string) {
	t.Helper()
	pattern := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(want) + `$`)
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) {
			return pattern.MatchString(waitForStatus(t, http.DefaultClient, url, "", http.StatusOK)), nil
		})
	if err != nil {
		t.Fatalf("the metrics do not say %s", want)
	}
}
