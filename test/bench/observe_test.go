package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/leaserecord"
)

// observer is the benchmark's only source of truth about leadership: a watch on
// the groups' Leases and one on the LeaderGroups, each version stamped with the
// time it arrived. It keeps, per group, the changes of holder (terms) and, per
// holder, the renewTime of its latest version — not every renewal.
type observer struct {
	prefix string // group and Lease names start with it; others (presence, lock) are ignored

	mu     sync.Mutex
	leases map[string]*leaseLog
	status map[string][]change // status.holder changes per group
	// versions counts the groups' Lease versions seen in each second (Unix time):
	// with the terms, the timeline BENCH_PROFILE keeps.
	versions map[int64]int
	renewed  map[int64]int // the same versions by the second of their renewTime
}

// change is a new holder ("" = none) seen at a time.
type change struct {
	at     time.Time
	holder string
	epoch  int32
	sent   time.Time // the writer's clock when it sent this version (its renewTime)
}

type leaseLog struct {
	terms     []change
	lastRenew map[string]time.Time // holder -> renewTime of its latest version
}

// observe starts both watches in ns (the groups' only when groups is true) until
// ctx ends.
func observe(ctx context.Context, cs kubernetes.Interface, c client.WithWatch, ns, prefix string, groups bool) (*observer, error) {
	o := &observer{prefix: prefix, leases: map[string]*leaseLog{}, status: map[string][]change{}, versions: map[int64]int{}, renewed: map[int64]int{}}
	leases := cs.CoordinationV1().Leases(ns)
	list, err := leases.List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for i := range list.Items {
		o.seeLease(&list.Items[i], time.Now())
	}
	go o.follow(ctx, list.ResourceVersion, func(rv string) (watch.Interface, error) {
		return leases.Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
	})
	if groups {
		var gl v1alpha1.LeaderGroupList
		if err := c.List(ctx, &gl, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		for i := range gl.Items {
			o.seeGroup(&gl.Items[i], time.Now())
		}
		go o.follow(ctx, gl.ResourceVersion, func(rv string) (watch.Interface, error) {
			return c.Watch(ctx, &v1alpha1.LeaderGroupList{}, client.InNamespace(ns),
				&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true}})
		})
	}
	return o, nil
}

// follow consumes a watch from rv, and starts it again from the last version seen
// when the server closes it.
func (o *observer) follow(ctx context.Context, rv string, start func(rv string) (watch.Interface, error)) {
	for ctx.Err() == nil {
		w, err := start(rv)
		if err != nil {
			time.Sleep(100 * time.Millisecond) // back-off before re-watching, not synchronisation
			continue
		}
		for ev := range w.ResultChan() {
			now := time.Now()
			obj, ok := ev.Object.(metav1.Object)
			if !ok {
				continue
			}
			rv = obj.GetResourceVersion()
			switch x := ev.Object.(type) {
			case *coordinationv1.Lease:
				o.seeLease(x, now)
			case *v1alpha1.LeaderGroup:
				o.seeGroup(x, now)
			}
		}
		w.Stop()
	}
}

func (o *observer) seeLease(l *coordinationv1.Lease, at time.Time) {
	if !strings.HasPrefix(l.Name, o.prefix) {
		return
	}
	holder, epoch := leaserecord.Holder(l), leaserecord.Epoch(l)
	o.mu.Lock()
	defer o.mu.Unlock()
	log := o.leases[l.Name]
	if log == nil {
		log = &leaseLog{lastRenew: map[string]time.Time{}}
		o.leases[l.Name] = log
	}
	o.versions[at.Unix()]++
	if l.Spec.RenewTime != nil {
		o.renewed[l.Spec.RenewTime.Unix()]++
	}
	if n := len(log.terms); n == 0 || log.terms[n-1].holder != holder || log.terms[n-1].epoch != epoch {
		c := change{at: at, holder: holder, epoch: epoch}
		if l.Spec.RenewTime != nil {
			c.sent = l.Spec.RenewTime.Time
		}
		log.terms = append(log.terms, c)
	}
	if holder != "" && l.Spec.RenewTime != nil {
		log.lastRenew[holder] = l.Spec.RenewTime.Time
	}
}

func (o *observer) seeGroup(g *v1alpha1.LeaderGroup, at time.Time) {
	if !strings.HasPrefix(g.Name, o.prefix) {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	h := o.status[g.Name]
	if n := len(h); n == 0 || h[n-1].holder != g.Status.Holder {
		o.status[g.Name] = append(h, change{at: at, holder: g.Status.Holder, epoch: g.Status.Transitions})
	}
}

// holders maps each group to its Lease's holder now ("" or missing: none).
func (o *observer) holders() map[string]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[string]string, len(o.leases))
	for name, log := range o.leases {
		out[name] = log.terms[len(log.terms)-1].holder
	}
	return out
}

// allLed tells whether each of names has a holder, and when the last of them was
// first seen with one.
func (o *observer) allLed(names []string) (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var last time.Time
	for _, n := range names {
		log := o.leases[n]
		if log == nil {
			return time.Time{}, false
		}
		first := time.Time{}
		for _, c := range log.terms {
			if c.holder != "" {
				first = c.at
				break
			}
		}
		if first.IsZero() || log.terms[len(log.terms)-1].holder == "" {
			return time.Time{}, false
		}
		last = later(last, first)
	}
	return last, true
}

// allShown tells whether each group's status names its Lease's holder, and when
// the last of them first did.
func (o *observer) allShown(names []string) (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var last time.Time
	for _, n := range names {
		log, st := o.leases[n], o.status[n]
		if log == nil || len(st) == 0 {
			return time.Time{}, false
		}
		holder := log.terms[len(log.terms)-1].holder
		if holder == "" || st[len(st)-1].holder != holder {
			return time.Time{}, false
		}
		last = later(last, st[len(st)-1].at)
	}
	return last, true
}

// timeline is, for each second from the first Lease version seen to the last,
// "time arrived sent terms": how many Lease versions arrived in it, how many were
// sent in it (by their renewTime) and how many terms began. Where leaderships were
// lost, it shows whether the writes had stalled or bunched up first.
func (o *observer) timeline() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	terms := map[int64]int{}
	for _, log := range o.leases {
		for _, c := range log.terms {
			terms[c.at.Unix()]++
		}
	}
	first, last := int64(math.MaxInt64), int64(0)
	for sec := range o.versions {
		first, last = min(first, sec), max(last, sec)
	}
	var b strings.Builder
	for sec := first; sec <= last; sec++ {
		fmt.Fprintf(&b, "%s %d %d %d\n", time.Unix(sec, 0).UTC().Format("15:04:05"), o.versions[sec], o.renewed[sec], terms[sec])
	}
	return b.String()
}

// sentPerSecond is the median and the most of the Lease versions written (by their
// renewTime, the writer's send time) in each whole second of [from, to): how evenly
// the candidates spread their writes, whatever delays them on the way.
func (o *observer) sentPerSecond(from, to time.Time) [2]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	var counts []int
	for sec := from.Unix() + 1; sec < to.Unix(); sec++ {
		counts = append(counts, o.renewed[sec])
	}
	if len(counts) == 0 {
		return [2]int{}
	}
	slices.Sort(counts)
	return [2]int{counts[len(counts)/2], counts[len(counts)-1]}
}

// termsBetween counts new terms (holder or epoch changes) that began in (from, to].
func (o *observer) termsBetween(from, to time.Time) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, log := range o.leases {
		for _, c := range log.terms {
			if c.at.After(from) && !c.at.After(to) {
				n++
			}
		}
	}
	return n
}

// handedOn is, for a group that holder led at t, when its Lease first left holder
// after t (released or taken), and when another identity held it; ok is false
// until both happened.
func (o *observer) handedOn(name, holder string, t time.Time) (left, next change, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	log := o.leases[name]
	if log == nil {
		return change{}, change{}, false
	}
	for _, c := range log.terms {
		if !c.at.After(t) {
			continue
		}
		if left.at.IsZero() && c.holder != holder {
			left = c
		}
		if c.holder != "" && c.holder != holder {
			return left, c, true
		}
	}
	return change{}, change{}, false
}

// shownAt is when the group's status first named holder after t.
func (o *observer) shownAt(name, holder string, t time.Time) (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, c := range o.status[name] {
		if c.at.After(t) && c.holder == holder {
			return c.at, true
		}
	}
	return time.Time{}, false
}

// lastRenewal is the renewTime of holder's latest version of the group's Lease.
func (o *observer) lastRenewal(name, holder string) time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	if log := o.leases[name]; log != nil {
		return log.lastRenew[holder]
	}
	return time.Time{}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
