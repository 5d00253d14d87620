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
	lockName string
	tracker  *leaserecord.Tracker
	// fallback is the duration of a presence Lease that names none: the lock's.
	fallback time.Duration

	mu        sync.Mutex
	instances map[types.NamespacedName]instance
	// leases are all of this installation's presence Leases, held or not: the
	// status writer deletes those left behind.
	leases map[types.NamespacedName]*coordinationv1.Lease
}

func newPresence(lockName string, t *leaserecord.Tracker, fallback time.Duration) *presence {
	return &presence{lockName: lockName, tracker: t, fallback: fallback,
		instances: map[types.NamespacedName]instance{}, leases: map[types.NamespacedName]*coordinationv1.Lease{}}
}

// isPresence tells whether l is a presence Lease of this installation.
func (p *presence) isPresence(l *coordinationv1.Lease) bool {
	return l.Labels[LabelPresence] == p.lockName
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
	selector, err := labels.Parse(l.Annotations[AnnotationServesSelector])
	if err != nil {
		selector = labels.Nothing() // an instance we cannot read serves nothing we know of
	}
	inst := instance{identity: leaserecord.Holder(l), selector: selector, lease: l,
		namespaces: splitNonEmpty(l.Annotations[AnnotationServesNamespaces])}
	p.instances[key] = inst
	return !had || old.identity != inst.identity || old.selector.String() != inst.selector.String() ||
		strings.Join(old.namespaces, ",") != strings.Join(inst.namespaces, ",")
}

// candidates lists the live instances that serve g, sorted by identity, and the
// earliest moment one of them may expire (zero when none can).
func (p *presence) candidates(g *v1alpha1.LeaderGroup, now time.Time) ([]v1alpha1.CandidateStatus, time.Time) {
	p.mu.Lock()
	all := make(map[types.NamespacedName]instance, len(p.instances))
	for k, v := range p.instances {
		all[k] = v
	}
	p.mu.Unlock()

	out := []v1alpha1.CandidateStatus{}
	var next time.Time
	for key, inst := range all {
		if !inst.serves(g) {
			continue
		}
		expiry, ok := p.tracker.Expiry(key, inst.lease, p.fallback)
		if !ok || !now.Before(expiry) {
			continue // its instance stopped renewing: gone
		}
		out = append(out, v1alpha1.CandidateStatus{Identity: inst.identity, Ready: true})
		if next.IsZero() || expiry.Before(next) {
			next = expiry
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Identity < out[j].Identity })
	return out, next
}

// find returns the presence Lease of identity while it is a live instance that
// serves g, else nil.
func (p *presence) find(g *v1alpha1.LeaderGroup, identity string, now time.Time) *coordinationv1.Lease {
	if identity == "" {
		return nil
	}
	p.mu.Lock()
	var found []types.NamespacedName
	var leases []*coordinationv1.Lease
	for key, inst := range p.instances {
		if inst.identity == identity && inst.serves(g) {
			found, leases = append(found, key), append(leases, inst.lease)
		}
	}
	p.mu.Unlock()
	for i, key := range found {
		if expiry, ok := p.tracker.Expiry(key, leases[i], p.fallback); ok && now.Before(expiry) {
			return leases[i]
		}
	}
	return nil
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
