package controller

import (
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/leaserecord"
)

// Every manager instance announces itself with a presence Lease of its own, held
// by its identity, so the status writer can list the candidates of Manager groups.
// The Lease says which groups the instance serves.
const (
	// LabelPresence marks a presence Lease; its value is the manager lock's name, so
	// that installations with different locks do not see each other's instances.
	LabelPresence = "coordination.electionmanager.dev/presence"
	// AnnotationServesNamespaces lists the namespaces the instance serves ("" = all).
	AnnotationServesNamespaces = "coordination.electionmanager.dev/serves-namespaces"
	// AnnotationServesSelector is the instance's group label selector ("" = all).
	AnnotationServesSelector = "coordination.electionmanager.dev/serves-selector"
)

// PresenceLeaseName is the name of the presence Lease of instance id.
func PresenceLeaseName(lockName, id string) string { return lockName + "-" + id }

// PresenceAnnotations describe what an instance serves, for its presence Lease.
func PresenceAnnotations(namespaces []string, selector string) map[string]string {
	return map[string]string{
		AnnotationServesNamespaces: strings.Join(namespaces, ","),
		AnnotationServesSelector:   selector,
	}
}

// instance is a manager instance as its presence Lease shows it.
type instance struct {
	identity   string
	namespaces []string // empty: all
	selector   labels.Selector
	lease      *coordinationv1.Lease
}

func (i instance) serves(g *v1alpha1.LeaderGroup) bool {
	if len(i.namespaces) > 0 && !slices.Contains(i.namespaces, g.Namespace) {
		return false
	}
	return i.selector.Matches(labels.Set(g.Labels))
}

// presence tracks the instances whose presence Leases have a holder.
type presence struct {
	lock    types.NamespacedName // the manager's lock: its name marks presence Leases, which live in its namespace
	tracker *leaserecord.Tracker
	// get reads a Lease from the informer's store, which is up to date before any
	// handler hears of a change.
	get func(types.NamespacedName) *coordinationv1.Lease
	// fallback is the duration of a presence Lease that names none: the lock's.
	fallback time.Duration

	mu        sync.Mutex
	instances map[types.NamespacedName]instance
	// leases are all of this installation's presence Leases, held or not: the
	// status writer deletes those left behind.
	leases map[types.NamespacedName]*coordinationv1.Lease
}

func newPresence(lock types.NamespacedName, t *leaserecord.Tracker, get func(types.NamespacedName) *coordinationv1.Lease, fallback time.Duration) *presence {
	return &presence{lock: lock, tracker: t, get: get, fallback: fallback,
		instances: map[types.NamespacedName]instance{}, leases: map[types.NamespacedName]*coordinationv1.Lease{}}
}

// isPresence tells whether l is a presence Lease of this installation.
func (p *presence) isPresence(l *coordinationv1.Lease) bool {
	return l.Labels[LabelPresence] == p.lock.Name
}

// observe records a presence Lease (nil: deleted) and tells whether the set of
// instances changed. Renewals do not change it.
func (p *presence) observe(key types.NamespacedName, l *coordinationv1.Lease) (changed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l == nil {
		delete(p.leases, key)
	} else {
		p.leases[key] = l
	}
	old, had := p.instances[key]
	if l == nil || leaserecord.Holder(l) == "" {
		delete(p.instances, key)
		return had
	}
	inst := instanceOf(l)
	p.instances[key] = inst
	return !had || old.identity != inst.identity || old.selector.String() != inst.selector.String() ||
		strings.Join(old.namespaces, ",") != strings.Join(inst.namespaces, ",")
}

// candidates lists the live instances that serve g, sorted by identity.
func (p *presence) candidates(g *v1alpha1.LeaderGroup, now time.Time) []v1alpha1.CandidateStatus {
	p.mu.Lock()
	all := make(map[types.NamespacedName]instance, len(p.instances))
	for k, v := range p.instances {
		all[k] = v
	}
	p.mu.Unlock()

	out := []v1alpha1.CandidateStatus{}
	for key, inst := range all {
		if !inst.serves(g) {
			continue
		}
		expiry, ok := p.tracker.Expiry(key, inst.lease, p.fallback)
		if !ok || !now.Before(expiry) {
			continue // its instance stopped renewing: gone
		}
		out = append(out, v1alpha1.CandidateStatus{Identity: inst.identity, Ready: true})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Identity < out[j].Identity })
	return out
}

// find returns the presence Lease of identity while it is a live instance that
// serves g, else nil. It reads the informer's store, not what handlers were told:
// an instance that deleted its presence Lease before releasing its Leases is gone
// for an elector woken by the release.
func (p *presence) find(g *v1alpha1.LeaderGroup, identity string, now time.Time) *coordinationv1.Lease {
	if identity == "" {
		return nil
	}
	key := types.NamespacedName{Namespace: p.lock.Namespace, Name: PresenceLeaseName(p.lock.Name, identity)}
	l := p.get(key)
	if l == nil || !p.isPresence(l) || leaserecord.Holder(l) != identity || !instanceOf(l).serves(g) {
		return nil
	}
	if expiry, ok := p.tracker.Expiry(key, l, p.fallback); !ok || !now.Before(expiry) {
		return nil
	}
	return l
}

// instanceOf reads what a presence Lease says of its instance.
func instanceOf(l *coordinationv1.Lease) instance {
	selector, err := labels.Parse(l.Annotations[AnnotationServesSelector])
	if err != nil {
		selector = labels.Nothing() // an instance we cannot read serves nothing we know of
	}
	return instance{identity: leaserecord.Holder(l), selector: selector, lease: l,
		namespaces: splitNonEmpty(l.Annotations[AnnotationServesNamespaces])}
}

// stale lists the presence Leases that have not changed for after on this clock,
// held or not: a live instance renews every retry period, and one that stopped
// gracefully deleted its own.
func (p *presence) stale(now time.Time, after time.Duration) []*coordinationv1.Lease {
	p.mu.Lock()
	all := make(map[types.NamespacedName]*coordinationv1.Lease, len(p.leases))
	for k, l := range p.leases {
		all[k] = l
	}
	p.mu.Unlock()
	var out []*coordinationv1.Lease
	for key, l := range all {
		if !now.Before(p.tracker.Since(key, l).Add(after)) {
			out = append(out, l)
		}
	}
	return out
}

func splitNonEmpty(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part != "" {
			out = append(out, part)
		}
	}
	return out
}
