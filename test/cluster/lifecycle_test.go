//go:build cluster

package cluster

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/election-manager/election-manager/api/v1alpha1"
)

const upgradeGroup = `apiVersion: coordination.electionmanager.dev/v1alpha1
kind: LeaderGroup
metadata: {name: kept, namespace: default}
spec:
  candidates: {source: Manager}
`

// testUpgrade changes values (three replicas, debug logs), then the image, with helm
// upgrade --wait. Each time the managers roll one at a time and a group stays led: a
// manager that goes releases what it leads, so no term ends by expiry.
func testUpgrade(t *testing.T) {
	apply(t, upgradeGroup)
	first := waitGroupHolder(t, "kept", "", time.Minute)

	run(t, helm, "upgrade", release, chart, "-n", namespace, "--reuse-values", "--wait", "--timeout", "5m",
		"--set", "replicas=3", "--set", "logging.level=debug")
	pods := managerPods(t, 3)
	for _, p := range pods {
		if !strings.Contains(strings.Join(p.Spec.Containers[0].Args, " "), "--zap-log-level=debug") {
			t.Errorf("pod %s runs with %v, want the upgraded --zap-log-level=debug", p.Name, p.Spec.Containers[0].Args)
		}
	}

	run(t, helm, "upgrade", release, chart, "-n", namespace, "--reuse-values", "--wait", "--timeout", "5m",
		"--set", "image.tag="+cluster.Images.ManagerNextTag)
	for _, p := range managerPods(t, 3) {
		if img := p.Spec.Containers[0].Image; !strings.HasSuffix(img, ":"+cluster.Images.ManagerNextTag) {
			t.Errorf("pod %s runs %s after the image upgrade, want tag %s", p.Name, img, cluster.Images.ManagerNextTag)
		}
	}
	last := waitGroupHolder(t, "kept", "", time.Minute)
	g := group(t, "default", "kept")
	for _, h := range g.Status.History {
		if h.EndedAt != nil && h.EndReason != v1alpha1.EndReleased {
			t.Errorf("during the upgrades %s's term ended %s, want Released: a manager that goes releases", h.Holder, h.EndReason)
		}
	}
	t.Logf("group kept: led by %s before, %s after two upgrades, %d transitions", first, last, g.Status.Transitions)
}

// testUninstall removes the release: the managers go, the CRD and the LeaderGroups
// stay (crds.keep), so a reinstall finds every group as it was.
func testUninstall(t *testing.T) {
	apply(t, upgradeGroup)
	run(t, helm, "uninstall", release, "-n", namespace, "--wait", "--timeout", "3m")
	eventually(t, "the manager pods gone", 2*time.Minute, func() (bool, error) {
		list, err := clientset.CoreV1().Pods(namespace).List(context.Background(), metav1.ListOptions{})
		return err == nil && len(list.Items) == 0, err
	})
	if _, err := tryRun(kubectl, "get", "crd", "leadergroups.coordination.electionmanager.dev"); err != nil {
		t.Errorf("the CRD went with the release: %v", err)
	}
	g := &v1alpha1.LeaderGroup{}
	if err := k8s.Get(context.Background(), keyOf("default", "kept"), g); apierrors.IsNotFound(err) {
		t.Errorf("the LeaderGroup went with the release")
	} else if err != nil {
		t.Error(err)
	}
}
