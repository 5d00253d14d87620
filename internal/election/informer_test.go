package election

import (
	"context"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// The all-namespaces informer sees elections everywhere but never the node heartbeats.
func TestLeaseInformerSkipsNodeLeases(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ns := newNamespace(t)
	for _, key := range []types.NamespacedName{{Namespace: ns, Name: "lock"}, {Namespace: NodeLeaseNamespace, Name: "node-" + ns}} {
		l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("x")}}
		if _, err := admin.CoordinationV1().Leases(key.Namespace).Create(ctx, l, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	li, err := NewLeaseInformer(admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	li.Start(ctx)
	if !li.WaitForSync(ctx) {
		t.Fatal("informer did not sync")
	}
	if li.Get(types.NamespacedName{Namespace: ns, Name: "lock"}) == nil {
		t.Errorf("the lease in %s is not in the cache", ns)
	}
	if li.Serves(NodeLeaseNamespace) || li.Get(types.NamespacedName{Namespace: NodeLeaseNamespace, Name: "node-" + ns}) != nil {
		t.Errorf("the informer serves %s", NodeLeaseNamespace)
	}
	for _, inf := range li.informers {
		for _, obj := range inf.GetStore().List() {
			if l := obj.(*coordinationv1.Lease); l.Namespace == NodeLeaseNamespace {
				t.Errorf("cached node lease %s", l.Name)
			}
			if l := obj.(*coordinationv1.Lease); len(l.ManagedFields) != 0 {
				t.Errorf("cached lease %s/%s keeps its managedFields", l.Namespace, l.Name)
			}
		}
	}
}

func TestLeaseInformerScope(t *testing.T) {
	if _, err := NewLeaseInformer(admin, nil, "a", NodeLeaseNamespace); err == nil {
		t.Errorf("NewLeaseInformer accepted %s", NodeLeaseNamespace)
	}
	if _, err := NewLeaseInformer(admin, nil, "a", "a"); err == nil {
		t.Errorf("NewLeaseInformer accepted a namespace twice")
	}
	li, err := NewLeaseInformer(admin, nil, "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	cfg := fast
	cfg.Lease, cfg.Identity = types.NamespacedName{Namespace: "c", Name: "lock"}, "x"
	if _, err := New(cfg, admin.CoordinationV1(), li, Callbacks{}, Options{}); err == nil {
		t.Errorf("New accepted a lease in a namespace the informer does not watch")
	}
	cfg.Lease.Namespace = "b"
	if _, err := New(cfg, admin.CoordinationV1(), li, Callbacks{}, Options{}); err != nil {
		t.Errorf("New refused a lease in a watched namespace: %v", err)
	}
}
