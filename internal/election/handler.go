package election

import (
	"fmt"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/client-go/tools/cache"
)

// AddEventHandler makes fn see every add, update and delete of a Lease the informer
// watches, on the informer's goroutine (so fn must be quick), for observers that
// share this informer rather than watch Leases a second time. The returned synced
// tells when fn has been handed every Lease that existed when it was added.
func (li *LeaseInformer) AddEventHandler(fn func(l *coordinationv1.Lease, deleted bool)) (synced func() bool, err error) {
	call := func(obj any, deleted bool) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if l, ok := obj.(*coordinationv1.Lease); ok {
			fn(l, deleted)
		}
	}
	var regs []cache.ResourceEventHandlerRegistration
	for _, inf := range li.informers {
		reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { call(obj, false) },
			UpdateFunc: func(_, obj any) { call(obj, false) },
			DeleteFunc: func(obj any) { call(obj, true) },
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
