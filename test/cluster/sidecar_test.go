//go:build cluster

package cluster

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// testSidecarSample applies config/samples/elector_sidecar.yaml as it is: two replicas
// of a worker, each with the elector as a native sidecar from the chart's image, under
// the sample's own ServiceAccount and Role. The Role is enough (the group gets a holder,
// no elector is refused) and no more (other groups and Leases are out of reach); only
// one replica does the work, and the other takes over when the leader's pod goes.
func testSidecarSample(t *testing.T) {
	run(t, kubectl, "apply", "-f", "config/samples/elector_sidecar.yaml")
	defer run(t, kubectl, "delete", "-f", "config/samples/elector_sidecar.yaml", "--wait=false")
	rolledOut(t, "default", "payments-worker", 2*time.Minute)
	leader := waitGroupHolder(t, "payments-worker", "", time.Minute)

	sa := "system:serviceaccount:default:payments-worker"
	for _, c := range []struct{ verb, resource, want string }{
		{"get", "leadergroups.coordination.electionmanager.dev/payments-worker", "yes"},
		{"update", "leases.coordination.k8s.io/payments-worker", "yes"},
		{"get", "leadergroups.coordination.electionmanager.dev/other", "no"},
		{"update", "leases.coordination.k8s.io/other", "no"},
		{"delete", "leases.coordination.k8s.io/payments-worker", "no"},
		{"update", "leadergroups.coordination.electionmanager.dev/payments-worker", "no"},
		{"list", "pods", "no"},
	} {
		out, _ := tryRun(kubectl, "auth", "can-i", c.verb, c.resource, "-n", "default", "--as", sa)
		if got := strings.TrimSpace(out); got != c.want {
			t.Errorf("can the sample's elector %s %s? %q, want %q", c.verb, c.resource, got, c.want)
		}
	}

	// The worker asks its elector every 5s. That one replica does NOT work can only be
	// seen over a window: three rounds of both.
	since := time.Now()
	pods := workers(t)
	time.Sleep(16 * time.Second)
	working := workingPods(t, pods, since)
	if len(working) != 1 || !strings.HasPrefix(leader, working[0]) {
		t.Errorf("replicas doing the work: %v, want only the leader's pod (elector %s)", working, leader)
	}
	for _, p := range pods {
		if out := run(t, kubectl, "logs", p, "-c", "elector", "-n", "default"); strings.Contains(out, "forbidden") {
			t.Errorf("the elector in %s was refused by the API server:\n%s", p, out)
		}
	}

	// The leader's pod goes: its elector releases the Lease and the other replica works.
	run(t, kubectl, "delete", "pod", working[0], "-n", "default", "--wait=false")
	next := waitGroupHolder(t, "payments-worker", leader, time.Minute)
	for _, p := range pods {
		if strings.HasPrefix(next, p) {
			since = time.Now()
			eventually(t, "the new leader's worker doing the work", 30*time.Second, func() (bool, error) {
				return len(workingPods(t, []string{p}, since)) == 1, nil
			})
		}
	}
}

// waitGroupHolder waits until the group's status names a holder other than not.
func waitGroupHolder(t *testing.T, name, not string, timeout time.Duration) string {
	t.Helper()
	var holder string
	eventually(t, name+" held by someone other than "+not, timeout, func() (bool, error) {
		holder = group(t, "default", name).Status.Holder
		return holder != "" && holder != not, nil
	})
	return holder
}

// workers are the names of the sample's pods.
func workers(t *testing.T) []string {
	t.Helper()
	list, err := clientset.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=payments-worker"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			names = append(names, p.Name)
		}
	}
	return names
}

// workingPods are the pods whose worker logged that it did the work since then.
func workingPods(t *testing.T, pods []string, since time.Time) []string {
	t.Helper()
	var out []string
	for _, p := range pods {
		logs, err := tryRun(kubectl, "logs", p, "-c", "worker", "-n", "default", "--since-time", since.UTC().Format(time.RFC3339))
		if err == nil && strings.Contains(logs, "leading: doing the work") {
			out = append(out, p)
		}
	}
	return out
}
