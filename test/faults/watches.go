package faults

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/leaserecord"
	"github.com/election-manager/election-manager/internal/podsource"
)

// watches record every version of the groups' Leases, of the groups' status and of
// the pods' leader labels, resuming from the last resourceVersion after the API
// server goes away, so that no version is missed.
type watches struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	groups   map[string]bool
	leases   []LeaseVersion
	statuses []StatusVersion
	labels   []LabelSample
	// podLabel is each pod's leader label value ("" for none).
	podLabel map[string]string
	// podServing: the pod is Ready and not terminating, so a Service sends it new requests.
	podServing map[string]bool
	// lastLabels is each group's last sample, as a key.
	lastLabels map[string]string
	// gaps: a watch had to list again (its resourceVersion was compacted).
	gaps int
}

func startWatches(ctx context.Context, s *System) (*watches, error) {
	ctx, cancel := context.WithCancel(ctx)
	w := &watches{cancel: cancel, groups: map[string]bool{}, podLabel: map[string]string{}, podServing: map[string]bool{}, lastLabels: map[string]string{}}
	for _, spec := range groupSpecs {
		w.groups[spec.name] = true
	}
	starts := []func() error{
		func() error { return w.follow(ctx, s.k8s, &coordinationv1.LeaseList{}, w.seeLease) },
		func() error { return w.follow(ctx, s.k8s, &v1alpha1.LeaderGroupList{}, w.seeGroup) },
		func() error { return w.follow(ctx, s.k8s, &corev1.PodList{}, w.seePod) },
	}
	for _, start := range starts {
		if err := start(); err != nil {
			cancel()
			return nil, err
		}
	}
	return w, nil
}

// follow lists list's kind in the namespace, hands every item to see, then watches
// from there until ctx ends, watching again from the last version seen whenever the
// watch ends (and listing again, counted as a gap, when that version is gone).
func (w *watches) follow(ctx context.Context, c client.WithWatch, list client.ObjectList, see func(watch.EventType, client.Object)) error {
	relist := func() (string, error) {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		l := list.DeepCopyObject().(client.ObjectList)
		if err := c.List(lctx, l, client.InNamespace(namespace)); err != nil {
			return "", err
		}
		items, _ := metaItems(l)
		for _, o := range items {
			see(watch.Added, o)
		}
		return l.GetResourceVersion(), nil
	}
	rv, err := relist()
	if err != nil {
		return err
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for ctx.Err() == nil {
			wi, err := c.Watch(ctx, list.DeepCopyObject().(client.ObjectList), client.InNamespace(namespace),
				&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true}})
			if err != nil {
				sleep(ctx, 200*time.Millisecond)
				continue
			}
			for e := range wi.ResultChan() {
				if e.Type == watch.Error {
					if st, ok := e.Object.(*metav1.Status); ok && st.Code == 410 {
						w.mu.Lock()
						w.gaps++
						w.mu.Unlock()
						for ctx.Err() == nil {
							if rv, err = relist(); err == nil {
								break
							}
							sleep(ctx, 200*time.Millisecond)
						}
					}
					break
				}
				o, ok := e.Object.(client.Object)
				if !ok {
					continue
				}
				rv = o.GetResourceVersion()
				if e.Type != watch.Bookmark {
					see(e.Type, o)
				}
			}
			wi.Stop()
		}
	}()
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func metaItems(l client.ObjectList) ([]client.Object, error) {
	var out []client.Object
	switch l := l.(type) {
	case *coordinationv1.LeaseList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *v1alpha1.LeaderGroupList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	case *corev1.PodList:
		for i := range l.Items {
			out = append(out, &l.Items[i])
		}
	}
	return out, nil
}

func (w *watches) seeLease(t watch.EventType, o client.Object) {
	l := o.(*coordinationv1.Lease)
	if !w.groups[l.Name] {
		return
	}
	v := LeaseVersion{Group: l.Name, At: time.Now(), Deleted: t == watch.Deleted, UID: string(l.UID),
		Holder: leaserecord.Holder(l), Epoch: leaserecord.Epoch(l),
		StartReason: string(leaserecord.Start(l)), EndReason: string(leaserecord.EndOf("", l).Reason)}
	if l.Spec.RenewTime != nil {
		v.RenewTime = l.Spec.RenewTime.Time
	}
	if v.Deleted {
		v.StartReason, v.EndReason = "", string(v1alpha1.EndUnknown)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.leases = append(w.leases, v)
}

func (w *watches) seeGroup(t watch.EventType, o client.Object) {
	g := o.(*v1alpha1.LeaderGroup)
	if t == watch.Deleted {
		return
	}
	v := StatusVersion{Group: g.Name, At: time.Now(), Holder: g.Status.Holder, Transitions: g.Status.Transitions}
	for _, h := range g.Status.History {
		v.History = append(v.History, Term{Holder: h.Holder, Transition: h.Transition, StartReason: string(h.StartReason), EndReason: string(h.EndReason)})
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.statuses = append(w.statuses, v)
}

func (w *watches) seePod(t watch.EventType, o client.Object) {
	p := o.(*corev1.Pod)
	value := p.Labels[podsource.LabelLeader]
	serving := t != watch.Deleted && p.DeletionTimestamp == nil && podReady(p)
	if t == watch.Deleted {
		value = ""
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	before := w.podLabel[p.Name]
	w.podLabel[p.Name] = value
	w.podServing[p.Name] = serving
	for _, group := range []string{before, value} {
		if group == "" {
			continue
		}
		pods := w.labelledLocked(group)
		var servingPods []string
		for _, pod := range pods {
			if w.podServing[pod] {
				servingPods = append(servingPods, pod)
			}
		}
		key := fmt.Sprint(pods, servingPods)
		if last, ok := w.lastLabels[group]; ok && last == key {
			continue // only changes
		}
		w.lastLabels[group] = key
		w.labels = append(w.labels, LabelSample{Group: group, At: time.Now(), Pods: pods, Serving: servingPods})
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (w *watches) labelledLocked(group string) []string {
	out := []string{}
	for pod, v := range w.podLabel {
		if v == group {
			out = append(out, pod)
		}
	}
	sort.Strings(out)
	return out
}

// labelled is the pods that carry group's label now.
func (w *watches) labelled(group string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.labelledLocked(group)
}

func (w *watches) records() ([]LeaseVersion, []StatusVersion, []LabelSample) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.leases), slices.Clone(w.statuses), slices.Clone(w.labels)
}

func (w *watches) stop() {
	w.cancel()
	w.wg.Wait()
}
