package election

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/election-manager/election-manager/internal/leaserecord"
)

// recorder is the safety checker: it records every leading interval per lease from
// the callbacks (monotonic clock), and at the end of the test asserts that intervals
// of different identities never overlap, that OnStoppedLeading never comes without
// OnStartedLeading, and that epochs grow strictly in order of acquisition.
type recorder struct {
	mu        sync.Mutex
	intervals map[string][]*interval // by lease key, in order of start
	problems  []string
}

type interval struct {
	id         string
	epoch      int32
	start, end time.Time // end zero while open
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{intervals: map[string][]*interval{}}
	t.Cleanup(func() { r.check(t) })
	return r
}

func (r *recorder) started(lease, id string, epoch int32) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if iv := r.open(lease, id); iv != nil {
		r.problem(fmt.Sprintf("%s: %s started leading (epoch %d) while already leading", lease, id, epoch))
	}
	r.intervals[lease] = append(r.intervals[lease], &interval{id: id, epoch: epoch, start: now})
}

func (r *recorder) stopped(lease, id string) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	iv := r.open(lease, id)
	if iv == nil {
		r.problem(fmt.Sprintf("%s: %s stopped leading without having started", lease, id))
		return
	}
	iv.end = now
}

// problem records a violation once (leader() may see the same one on every poll).
func (r *recorder) problem(p string) {
	for _, q := range r.problems {
		if q == p {
			return
		}
	}
	r.problems = append(r.problems, p)
}

func (r *recorder) open(lease, id string) *interval {
	for _, iv := range r.intervals[lease] {
		if iv.id == id && iv.end.IsZero() {
			return iv
		}
	}
	return nil
}

// leader returns the identity with an open interval on lease ("" if none), failing
// the test if there are several.
func (r *recorder) leader(lease string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var open []string
	for _, iv := range r.intervals[lease] {
		if iv.end.IsZero() {
			open = append(open, iv.id)
		}
	}
	if len(open) > 1 {
		r.problem(fmt.Sprintf("%s: several open leading intervals %v", lease, open))
	}
	if len(open) == 0 {
		return ""
	}
	return open[0]
}

// terms returns a copy of the intervals of lease, in order of start.
func (r *recorder) terms(lease string) []interval {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]interval, 0, len(r.intervals[lease]))
	for _, iv := range r.intervals[lease] {
		out = append(out, *iv)
	}
	return out
}

func (r *recorder) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.problems {
		t.Error(p)
	}
	now := time.Now()
	for lease, ivs := range r.intervals {
		sorted := append([]*interval(nil), ivs...)
		sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].start.Before(sorted[j].start) })
		for i, a := range sorted {
			if i > 0 && a.epoch <= sorted[i-1].epoch {
				t.Errorf("%s: epoch did not grow: %s acquired epoch %d after %s had epoch %d", lease, a.id, a.epoch, sorted[i-1].id, sorted[i-1].epoch)
			}
			aEnd := a.end
			if aEnd.IsZero() {
				aEnd = now
			}
			for _, b := range sorted[i+1:] {
				bEnd := b.end
				if bEnd.IsZero() {
					bEnd = now
				}
				if a.start.Before(bEnd) && b.start.Before(aEnd) {
					t.Errorf("%s: leading intervals overlap: %s epoch %d [%s, %s] and %s epoch %d [%s, %s]", lease,
						a.id, a.epoch, a.start.Format(time.StampMicro), aEnd.Format(time.StampMicro),
						b.id, b.epoch, b.start.Format(time.StampMicro), bEnd.Format(time.StampMicro))
				}
			}
		}
	}
}

// history records every version of one Lease through a watch (admin client, no
// proxy), and at the end of the test checks that the epoch never goes back, grows by
// one on every acquisition and stays put otherwise.
type history struct {
	mu       sync.Mutex
	versions []*coordinationv1.Lease
	deleted  atomic.Int32
}

func watchLease(t *testing.T, key types.NamespacedName) *history {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sel := fields.OneTermEqualSelector("metadata.name", key.Name).String()
	leases := admin.CoordinationV1().Leases(key.Namespace)
	list, err := leases.List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	h := &history{}
	for i := range list.Items {
		h.versions = append(h.versions, &list.Items[i])
	}
	w, err := watchtools.NewRetryWatcherWithContext(ctx, list.ResourceVersion, &cache.ListWatch{
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return leases.Watch(ctx, o)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range w.ResultChan() {
			l, ok := ev.Object.(*coordinationv1.Lease)
			if !ok {
				continue
			}
			if ev.Type == watch.Deleted {
				h.deleted.Add(1)
				continue
			}
			h.mu.Lock()
			h.versions = append(h.versions, l)
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		h.check(t)
		w.Stop()
		cancel()
		<-done
	})
	return h
}

func (h *history) all() []*coordinationv1.Lease {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]*coordinationv1.Lease(nil), h.versions...)
}

func (h *history) last() *coordinationv1.Lease {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.versions) == 0 {
		return nil
	}
	return h.versions[len(h.versions)-1]
}

// isAcquisition tells whether cur starts a new term after prev.
func isAcquisition(prev, cur *coordinationv1.Lease) bool {
	if leaserecord.Holder(cur) == "" {
		return false
	}
	return prev == nil || leaserecord.Holder(prev) != leaserecord.Holder(cur) || !prev.Spec.AcquireTime.Equal(cur.Spec.AcquireTime)
}

func (h *history) check(t *testing.T) {
	t.Helper()
	var prev *coordinationv1.Lease
	for _, cur := range h.all() {
		switch {
		case prev == nil:
		case isAcquisition(prev, cur) && leaserecord.Epoch(cur) <= leaserecord.Epoch(prev):
			t.Errorf("lease %s: %s acquired with epoch %d after epoch %d", cur.Name, leaserecord.Holder(cur), leaserecord.Epoch(cur), leaserecord.Epoch(prev))
		case !isAcquisition(prev, cur) && leaserecord.Epoch(cur) != leaserecord.Epoch(prev):
			t.Errorf("lease %s: epoch changed from %d to %d without an acquisition (holder %q)", cur.Name, leaserecord.Epoch(prev), leaserecord.Epoch(cur), leaserecord.Holder(cur))
		}
		prev = cur
	}
}

// acquisitions returns the versions that started a term, in order.
func (h *history) acquisitions() []*coordinationv1.Lease {
	var out []*coordinationv1.Lease
	var prev *coordinationv1.Lease
	for _, cur := range h.all() {
		if isAcquisition(prev, cur) {
			out = append(out, cur)
		}
		prev = cur
	}
	return out
}

// lastRenewal is the renewTime (the send time the elector wrote) of the newest version
// naming holder in epoch.
func (h *history) lastRenewal(holder string, epoch int32) time.Time {
	var last time.Time
	for _, v := range h.all() {
		if leaserecord.Holder(v) == holder && leaserecord.Epoch(v) == epoch && v.Spec.RenewTime != nil && v.Spec.RenewTime.After(last) {
			last = v.Spec.RenewTime.Time
		}
	}
	return last
}
