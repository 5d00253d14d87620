package election

import (
	"fmt"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/client-go/tools/cache"
)

// AddEventHandler makes fn see every add (old nil), update and delete (cur nil) of
// a Lease the informer watches, on the informer's goroutine (so fn must be quick),
// for observers that share this informer rather than watch Leases a second time.
// The process's Tracker has seen each change before fn does. The returned synced
// tells when fn has been handed every Lease that existed when it was added.
func (li *LeaseInformer) AddEventHandler(fn func(old, cur *coordinationv1.Lease)) (synced func() bool, err error) {
	var regs []cache.ResourceEventHandlerRegistration
	for _, inf := range li.informers {
		reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) {
				if l, _ := leaseOf(obj); l != nil {
					li.tracker.Since(keyOf(l), l)
					fn(nil, l)
				}
			},
			UpdateFunc: func(oldObj, obj any) {
				if l, _ := leaseOf(obj); l != nil {
					li.tracker.Since(keyOf(l), l)
					old, _ := leaseOf(oldObj)
					fn(old, l)
				}
			},
			DeleteFunc: func(obj any) {
				if l, unknown := leaseOf(obj); l != nil {
					li.tracker.Delete(keyOf(l), l, unknown)
					fn(l, nil)
				}
			},
		})
		if err != nil {
			return nil, fmt.Errorf("adding a Lease event handler: %w", err)
		}
		regs = append(regs, reg)
	}
	return func() bool {
		for _, reg := range regs {
			if !reg.HasSynced() {
				return false
			}
		}
		return true
	}, nil
}
