//go:build cluster

package cluster

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/election-manager/election-manager/test/cluster/node"
)

// testKubeletStopped stops the node's kubelet for longer than the node-monitor grace
// period: the node goes NotReady and its pods are marked not Ready, while their
// containers run on unsupervised. Then the kubelet comes back. Throughout, no two
// managers lead a group (from the managers' own logs), the leader label is never on
// two pods that can take new requests (from a watch); afterwards every group has a leader again.
func testKubeletStopped(t *testing.T) {
	apply(t, `apiVersion: coordination.electionmanager.dev/v1alpha1
kind: LeaderGroup
metadata: {name: node-fault, namespace: default}
spec:
  leaseDuration: 4s
  renewDeadline: 2s
  retryPeriod: 500ms
  candidates: {source: Manager}
`)
	apply(t, fmt.Sprintf(webApp, "web2", cluster.Images.TestApp))
	defer run(t, kubectl, "delete", "leadergroup/node-fault", "deployment/web2", "service/web2-leader", "leadergroup/web2", "-n", "default", "--wait=false")
	rolledOut(t, "default", "web2", 2*time.Minute)
	waitHolder(t, "node-fault", "", time.Minute)
	waitLabelled(t, "web2", "", time.Minute)
	labels := watchLabels(t, "web2")

	start := time.Now()
	if err := cluster.StopKubelet(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the node NotReady", node.NodeMonitorGracePeriod+time.Minute, func() (bool, error) {
		return nodeReady() == corev1.ConditionUnknown, nil
	})
	eventually(t, "web2's pods marked not Ready", time.Minute, func() (bool, error) {
		list, err := clientset.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=web2"})
		if err != nil {
			return false, err
		}
		for _, p := range list.Items {
			if ready(&p) {
				return false, nil
			}
		}
		return len(list.Items) > 0, nil
	})
	t.Logf("kubelet stopped: node NotReady and pods not Ready after %.0fs", time.Since(start).Seconds())
	if err := cluster.StartKubelet(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	eventually(t, "the node Ready again", 2*time.Minute, func() (bool, error) { return nodeReady() == corev1.ConditionTrue, nil })
	waitHolder(t, "node-fault", "", failoverLD+failoverRD+2*failoverRP+slack)
	web := waitLabelled(t, "web2", "", 2*time.Minute)
	t.Logf("kubelet back: node Ready, both groups led (web2 by %s) %.0fs later", web, time.Since(restarted).Seconds())

	if v := labels.stop().twoServingLabelled(); v != "" {
		t.Errorf("two pods that could take new requests carried web2's leader label: %s", v)
	}
	checkManagersNeverOverlap(t, "default/node-fault")
}

func nodeReady() corev1.ConditionStatus {
	n, err := clientset.CoreV1().Nodes().Get(context.Background(), node.NodeName, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status
		}
	}
	return ""
}

// checkManagersNeverOverlap reads every manager container's log on the node (each
// line as the kubelet wrote it, the manager's own timestamp inside) and checks that
// no two managers' leading intervals on lease overlap.
func checkManagersNeverOverlap(t *testing.T, lease string) {
	t.Helper()
	logs, err := filepath.Glob(filepath.Join(cluster.Dir, "pod-logs", namespace+"_"+release+"-*", "manager", "*.log"))
	if err != nil || len(logs) == 0 {
		t.Fatalf("no manager logs on the node (%v)", err)
	}
	type interval struct {
		file       string
		start, end time.Time
	}
	var all []interval
	for _, f := range logs {
		var open *interval
		for _, l := range managerLines(t, f) {
			if l.Lease != lease {
				continue
			}
			switch {
			case l.Msg == "Leading" && open == nil:
				open = &interval{file: f, start: l.TS}
			case l.Msg == "Stopped leading" && open != nil:
				open.end = l.TS
				all = append(all, *open)
				open = nil
			}
		}
		if open != nil {
			open.end = time.Now()
			all = append(all, *open)
		}
	}
	for i, a := range all {
		for _, b := range all[i+1:] {
			if a.file != b.file && a.start.Before(b.end) && b.start.Before(a.end) {
				t.Errorf("SAFETY: two managers led %s at once: %s %s–%s and %s %s–%s", lease,
					a.file, a.start.Format(time.StampMicro), a.end.Format(time.StampMicro),
					b.file, b.start.Format(time.StampMicro), b.end.Format(time.StampMicro))
			}
		}
	}
	if len(all) == 0 {
		t.Errorf("no manager's log says it led %s: the check cannot see leadership", lease)
	}
	t.Logf("%d leading intervals of %s in %d manager logs, none overlapping", len(all), lease, len(logs))
}

type managerLine struct {
	TS    time.Time `json:"ts"`
	Msg   string    `json:"msg"`
	Lease string    `json:"lease"`
}

// managerLines reads the manager's JSON log lines from a CRI log file ("<time>
// <stream> <tag> <line>").
func managerLines(t *testing.T, file string) []managerLine {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var out []managerLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), " ", 4)
		if len(parts) < 4 || !strings.Contains(parts[3], `leading"`) && !strings.Contains(parts[3], `"Leading"`) {
			continue
		}
		var l managerLine
		if err := json.Unmarshal([]byte(parts[3]), &l); err != nil {
			t.Fatalf("%s: cannot read %q: %v", file, parts[3], err)
		}
		out = append(out, l)
	}
	return out
}
