package testutil

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// A killed kube-apiserver and a killed etcd come back with their data: an object
// written before is read after; a paused etcd holds the API server's writes until
// it is continued.
func TestControlPlaneComponentsRestartWithTheirData(t *testing.T) {
	if _, err := AssetsDir(); err != nil {
		t.Skip(err)
	}
	cp, err := StartControlPlaneWith(ControlPlaneOptions{NoCRDs: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Stop() })
	cs, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kept"}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, comp := range []Component{Etcd, APIServer} {
		before, err := cp.Pid(comp)
		if err != nil {
			t.Fatal(err)
		}
		if err := cp.Kill(comp); err != nil {
			t.Fatal(err)
		}
		if err := cp.Restart(comp); err != nil {
			t.Fatal(err)
		}
		if after, _ := cp.Pid(comp); after == before {
			t.Errorf("%s: the same pid %d after a restart", comp, after)
		}
		if err := cp.Ready(ctx, time.Minute); err != nil {
			t.Fatalf("after restarting %s: %v", comp, err)
		}
		if _, err := cs.CoreV1().Namespaces().Get(ctx, "kept", metav1.GetOptions{}); err != nil {
			t.Fatalf("after restarting %s: %v", comp, err)
		}
	}

	if err := cp.Pause(Etcd); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	_, err = cs.CoreV1().Namespaces().Create(wctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "paused"}}, metav1.CreateOptions{})
	cancel()
	if err == nil {
		t.Error("a write went through while etcd was stopped")
	}
	if err := cp.Resume(Etcd); err != nil {
		t.Fatal(err)
	}
	if err := cp.Ready(ctx, time.Minute); err != nil {
		t.Fatalf("after resuming etcd: %v", err)
	}
}
