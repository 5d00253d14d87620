//go:build cluster

package cluster

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/election-manager/election-manager/api/v1alpha1"
)

// Short timings, so that a crash is survived in seconds; slack is for a loaded 2-core
// machine (image start, the status write after the Lease's).
const (
	failoverLD, failoverRD, failoverRP = 4 * time.Second, 2 * time.Second, 500 * time.Millisecond
	slack                              = 10 * time.Second
)

// testManagerFailover runs a Manager group on the chart's two manager pods, deletes the
// leading pod (it releases the Lease on SIGTERM), then kills the next leader's process
// with SIGKILL inside the node (its Lease must expire). Each time the other pod takes
// over within the bound the timings give, and history says how the term ended.
func testManagerFailover(t *testing.T) {
	apply(t, `apiVersion: coordination.electionmanager.dev/v1alpha1
kind: LeaderGroup
metadata: {name: failover, namespace: default}
spec:
  leaseDuration: 4s
  renewDeadline: 2s
  retryPeriod: 500ms
  candidates: {source: Manager}
`)
	defer run(t, kubectl, "delete", "leadergroup", "failover", "-n", "default", "--wait=false")
	pods := managerPods(t, 2)

	leader := waitHolder(t, "failover", "", 2*time.Minute)
	pod := podOf(t, pods, leader)
	start := time.Now()
	run(t, kubectl, "delete", "pod", pod.Name, "-n", namespace, "--wait=false")
	next := waitHolder(t, "failover", leader, failoverLD+failoverRD+2*failoverRP+slack)
	t.Logf("leader pod deleted: %s → %s in %dms (bound %s + slack)", leader, next, time.Since(start).Milliseconds(), failoverLD+failoverRD+2*failoverRP)
	wantEnd(t, "failover", leader, v1alpha1.EndReleased)

	// Kill -9 the new leader's process, as the OOM killer would: no release.
	pods = managerPods(t, 2)
	pod = podOf(t, pods, next)
	id := strings.TrimPrefix(pod.Status.ContainerStatuses[0].ContainerID, "containerd://")
	start = time.Now()
	if err := cluster.KillContainer(id, "SIGKILL"); err != nil {
		t.Fatal(err)
	}
	third := waitHolder(t, "failover", next, failoverLD+2*failoverRP+slack)
	t.Logf("leader's process killed: %s → %s in %dms (leaseDuration %s)", next, third, time.Since(start).Milliseconds(), failoverLD)
	if elapsed := time.Since(start); elapsed < failoverLD-failoverRP-time.Second {
		t.Errorf("the Lease passed %s after its holder was killed, before it could have expired (%s)", elapsed, failoverLD)
	}
	wantEnd(t, "failover", next, v1alpha1.EndExpired)
}

// waitHolder waits until the group's Lease has a holder other than not, and returns it.
// It reads the Lease, the record of who leads; status follows it.
func waitHolder(t *testing.T, name, not string, timeout time.Duration) string {
	t.Helper()
	var holder string
	eventually(t, "a holder of "+name+" other than "+not, timeout, func() (bool, error) {
		l, err := clientset.CoordinationV1().Leases("default").Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		holder = ""
		if l.Spec.HolderIdentity != nil {
			holder = *l.Spec.HolderIdentity
		}
		return holder != "" && holder != not, nil
	})
	return holder
}

// podOf is the pod whose manager has the identity id (its pod name plus a suffix).
func podOf(t *testing.T, pods []corev1.Pod, id string) corev1.Pod {
	t.Helper()
	for _, p := range pods {
		if strings.HasPrefix(id, p.Name+"-") {
			return p
		}
	}
	t.Fatalf("no manager pod has the identity %s", id)
	return corev1.Pod{}
}

// wantEnd waits until the group's history closes holder's term with the reason want.
func wantEnd(t *testing.T, name, holder string, want v1alpha1.EndReason) {
	t.Helper()
	var got v1alpha1.EndReason
	eventually(t, "history ends "+holder+"'s term", 30*time.Second, func() (bool, error) {
		for _, h := range group(t, "default", name).Status.History {
			if h.Holder == holder && h.EndedAt != nil {
				got = h.EndReason
				return true, nil
			}
		}
		return false, nil
	})
	if got != want {
		t.Errorf("history ends %s's term as %s, want %s", holder, got, want)
	}
}
