package election

import (
	"context"
	"fmt"
	"sync"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

	"github.com/election-manager/election-manager/internal/leaserecord"
)

// LeaseInformer is the followers' only source of Leases: one shared informer per
// watched namespace (or one for all namespaces but kube-node-lease), whose event
// handler wakes the electors subscribed to the Lease that changed. Thousands of
// electors in a process share it, so a follower costs the API server nothing.
type LeaseInformer struct {
	// byNamespace holds the informer serving each namespace; "" serves all.
	byNamespace map[string]cache.SharedIndexInformer
	informers   []cache.SharedIndexInformer
	// synced is closed once every informer has listed its namespace.
	synced chan struct{}
	start  sync.Once

	mu sync.Mutex
	// subs: Lease -> wake channels of its electors. A wake is a non-blocking send on a
	// channel with room for one, so a slow elector never blocks the informer and
	// bursts coalesce into one wake.
	subs map[types.NamespacedName]map[chan struct{}]struct{}
	// tracker is when each record was first seen, and the deleted ones: electors
	// must not re-create a Lease its holder may still lead under.
	tracker *leaserecord.Tracker
}

// NewLeaseInformer builds the informers for namespaces; none means all namespaces
// except kube-node-lease (by field selector). Listing kube-node-lease is refused.
// The informers resync never: electors keep their own timers. clk is the process's
// observer clock, which every expiry is measured on (nil: the real clock).
func NewLeaseInformer(client kubernetes.Interface, clk clock.PassiveClock, namespaces ...string) (*LeaseInformer, error) {
	if clk == nil {
		clk = clock.RealClock{}
	}
	li := &LeaseInformer{
		byNamespace: map[string]cache.SharedIndexInformer{},
		subs:        map[types.NamespacedName]map[chan struct{}]struct{}{},
		synced:      make(chan struct{}),
		tracker:     leaserecord.NewTracker(clk),
	}
	var opts [][]informers.SharedInformerOption
	if len(namespaces) == 0 {
		opts = append(opts, []informers.SharedInformerOption{
			informers.WithTweakListOptions(func(o *metav1.ListOptions) {
				o.FieldSelector = fields.OneTermNotEqualSelector("metadata.namespace", NodeLeaseNamespace).String()
			}),
		})
		namespaces = []string{""}
	} else {
		for _, ns := range namespaces {
			if ns == "" || ns == NodeLeaseNamespace {
				return nil, fmt.Errorf("namespaces: %q cannot be watched for elections", ns)
			}
			if _, dup := li.byNamespace[ns]; dup {
				return nil, fmt.Errorf("namespaces: %q listed twice", ns)
			}
			li.byNamespace[ns] = nil
			opts = append(opts, []informers.SharedInformerOption{informers.WithNamespace(ns)})
		}
	}
	for i, ns := range namespaces {
		inf := informers.NewSharedInformerFactoryWithOptions(client, 0, opts[i]...).Coordination().V1().Leases().Informer()
		// managedFields are most of a Lease's bytes and no elector reads them.
		if err := inf.SetTransform(stripManagedFields); err != nil {
			return nil, fmt.Errorf("setting the lease transform: %w", err)
		}
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { li.notify(obj, false) },
			UpdateFunc: func(_, obj any) { li.notify(obj, false) },
			DeleteFunc: func(obj any) { li.notify(obj, true) },
		}); err != nil {
			return nil, fmt.Errorf("adding the lease event handler: %w", err)
		}
		li.byNamespace[ns] = inf
		li.informers = append(li.informers, inf)
	}
	return li, nil
}

// stripManagedFields is the informers' transform. It runs before the object is
// stored, on an object nobody else holds yet, so changing it in place is allowed.
func stripManagedFields(obj any) (any, error) {
	if l, ok := obj.(*coordinationv1.Lease); ok {
		l.ManagedFields = nil
	}
	return obj, nil
}

// Start runs the informers until ctx is done; calls after the first do nothing. It
// does not wait for them to sync: electors wait for that themselves (one shared
// wait, not one poll per elector).
func (li *LeaseInformer) Start(ctx context.Context) {
	li.start.Do(func() {
		for _, inf := range li.informers {
			go inf.RunWithContext(ctx)
		}
		go func() {
			if cache.WaitForCacheSync(ctx.Done(), li.HasSynced) {
				close(li.synced)
			}
		}()
	})
}

// HasSynced tells whether every informer has listed its namespace once. Before
// that, "not in the cache" does not mean "does not exist".
func (li *LeaseInformer) HasSynced() bool {
	for _, inf := range li.informers {
		if !inf.HasSynced() {
			return false
		}
	}
	return true
}

// WaitForSync waits until HasSynced or ctx is done, and tells which.
func (li *LeaseInformer) WaitForSync(ctx context.Context) bool {
	select {
	case <-li.synced:
		return true
	case <-ctx.Done():
		return false
	}
}

// Serves tells whether the informer watches namespace ns.
func (li *LeaseInformer) Serves(ns string) bool {
	return li.informerFor(ns) != nil
}

func (li *LeaseInformer) informerFor(ns string) cache.SharedIndexInformer {
	if ns == NodeLeaseNamespace {
		return nil
	}
	if inf, ok := li.byNamespace[ns]; ok {
		return inf
	}
	return li.byNamespace[""]
}

// Get returns the cached Lease, nil when it is not in the cache. The object is shared
// with every reader: deep-copy it before changing it.
func (li *LeaseInformer) Get(key types.NamespacedName) *coordinationv1.Lease {
	inf := li.informerFor(key.Namespace)
	if inf == nil {
		return nil
	}
	obj, ok, err := inf.GetStore().GetByKey(key.Namespace + "/" + key.Name)
	if err != nil || !ok {
		return nil
	}
	l, _ := obj.(*coordinationv1.Lease)
	return l
}

// List returns the cached Leases of namespace ("": of every namespace watched),
// shared like Get's.
func (li *LeaseInformer) List(namespace string) []*coordinationv1.Lease {
	var objs []any
	if namespace == "" {
		for _, inf := range li.informers {
			objs = append(objs, inf.GetStore().List()...)
		}
	} else if inf := li.informerFor(namespace); inf != nil {
		objs, _ = inf.GetIndexer().ByIndex(cache.NamespaceIndex, namespace)
	}
	out := make([]*coordinationv1.Lease, 0, len(objs))
	for _, o := range objs {
		if l, ok := o.(*coordinationv1.Lease); ok {
			out = append(out, l)
		}
	}
	return out
}

// Tracker is the process's record of when each Lease was seen changing, fed by
// this informer before any handler runs.
func (li *LeaseInformer) Tracker() *leaserecord.Tracker { return li.tracker }

// subscribe registers wake to be signalled on every change of the Lease key.
func (li *LeaseInformer) subscribe(key types.NamespacedName, wake chan struct{}) {
	li.mu.Lock()
	defer li.mu.Unlock()
	s := li.subs[key]
	if s == nil {
		s = map[chan struct{}]struct{}{}
		li.subs[key] = s
	}
	s[wake] = struct{}{}
}

func (li *LeaseInformer) unsubscribe(key types.NamespacedName, wake chan struct{}) {
	li.mu.Lock()
	defer li.mu.Unlock()
	if s := li.subs[key]; s != nil {
		delete(s, wake)
		if len(s) == 0 {
			delete(li.subs, key)
		}
	}
}

// notify runs on the informer's handler goroutine for every add, update and delete.
func (li *LeaseInformer) notify(obj any, deleted bool) {
	l, unknown := leaseOf(obj)
	if l == nil {
		return
	}
	key := keyOf(l)
	if deleted {
		li.tracker.Delete(key, l, unknown)
	} else {
		li.tracker.Since(key, l)
	}
	li.mu.Lock()
	defer li.mu.Unlock()
	for wake := range li.subs[key] {
		select {
		case wake <- struct{}{}:
		default: // a wake is already pending; the elector reads the latest state anyway
		}
	}
}

// subscribers counts the wake channels for key (tests).
func (li *LeaseInformer) subscribers(key types.NamespacedName) int {
	li.mu.Lock()
	defer li.mu.Unlock()
	return len(li.subs[key])
}

// leaseOf unwraps an informer event's object. unknown: a deletion the informer
// learned of by a relist, carrying only the last state it knew, not the final one.
func leaseOf(obj any) (l *coordinationv1.Lease, unknown bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj, unknown = d.Obj, true
	}
	l, _ = obj.(*coordinationv1.Lease)
	return l, unknown
}

func keyOf(l *coordinationv1.Lease) types.NamespacedName {
	return types.NamespacedName{Namespace: l.Namespace, Name: l.Name}
}
