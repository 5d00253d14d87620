package e2e

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/testutil"
)

// Steady groups cost renewals only: while every Lease is renewed in time and no
// candidate comes or goes, the status writer neither reconciles the groups again
// and again (it used to, once per leaseDuration each, to look for an expiry) nor
// writes their status. The bound has slack for a loaded machine: fewer reconciles
// in three leaseDurations than there are groups, where each group's expiry
// recheck alone made three.
func TestSteadyGroupsAreNotReconciledRepeatedly(t *testing.T) {
	const groups = 10
	c := newCluster(t)
	var metrics []string
	for _, id := range []string{"manager-a", "manager-b"} {
		port := testutil.FreePort(t)
		c.startManager(id, false, fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", port), "--metrics-secure=false")
		metrics = append(metrics, fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	}
	for i := range groups {
		c.group(fmt.Sprintf("g-%d", i))
	}
	versions := map[string]string{}
	for i := range groups {
		name := fmt.Sprintf("g-%d", i)
		g := c.waitFor(name, 20*time.Second, "a holder and both candidates", func(g *v1alpha1.LeaderGroup) bool {
			return g.Status.Holder != "" && hasCandidates("manager-a", "manager-b")(g)
		})
		versions[name] = g.ResourceVersion
	}

	before := reconcileTotal(t, metrics)
	window := 3 * leaseDuration
	time.Sleep(window) // the window in which nothing may happen: there is no condition to poll
	reconciled := reconcileTotal(t, metrics) - before

	if reconciled >= groups {
		t.Errorf("%d groups were reconciled %.0f times in %s of steady state (3 leaseDurations), want fewer than one each",
			groups, reconciled, window)
	}
	for name, rv := range versions {
		g := &v1alpha1.LeaderGroup{}
		if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: c.namespace, Name: name}, g); err != nil {
			t.Fatal(err)
		}
		if g.ResourceVersion != rv {
			t.Errorf("group %s was written in steady state (status %s)", name, statusString(g))
		}
	}
	t.Logf("%d steady groups: %.0f reconciles in %s", groups, reconciled, window)
}

var reconcileSample = regexp.MustCompile(`(?m)^controller_runtime_reconcile_total\{[^}]*controller="leadergroup"[^}]*\} (\S+)$`)

// reconcileTotal sums the LeaderGroup controller's reconciles over the managers.
func reconcileTotal(t *testing.T, urls []string) float64 {
	t.Helper()
	var n float64
	for _, url := range urls {
		for _, m := range reconcileSample.FindAllStringSubmatch(waitForStatus(t, http.DefaultClient, url, "", http.StatusOK), -1) {
			v, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				t.Fatalf("reading %s: %v", m[0], err)
			}
			n += v
		}
	}
	return n
}
