package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/controller"
	"github.com/election-manager/election-manager/internal/election"
	"github.com/election-manager/election-manager/internal/leaserecord"
	"github.com/election-manager/election-manager/internal/timing"
)

// reservation is how long a Lease handed over stays reserved for its target at the
// test timings: the bound on a leaderless gap when the target does not come.
var reservation = timing.Timings{LeaseDuration: leaseDuration, RenewDeadline: renewDeadline, RetryPeriod: retryPeriod}.HandoverReservation()

// A preferred identity that is live (its presence Lease renews) but runs no elector
// for the group: the holder hands over to it once, the reservation lapses after a
// few retry periods, the group elects as usual, and nobody hands over to it again
// while it stays as it is. Counted from the Lease's own records, not from status.
func TestHandoverToALiveNonElectorLapsesOnce(t *testing.T) {
	c := newCluster(t)
	c.startManager("manager-a", false)
	c.group("payments")
	c.waitFor("payments", 10*time.Second, "held by manager-a", heldBy("manager-a"))
	leave := c.announce("ghost")
	c.waitFor("payments", 2*leaseDuration, "ghost listed", hasCandidates("ghost", "manager-a"))

	key := types.NamespacedName{Namespace: c.namespace, Name: "payments"}
	records := watchRecords(t, key)
	c.prefer("payments", "ghost")
	// Three leaseDurations: the old code handed over again after every lapse.
	time.Sleep(3 * leaseDuration)
	requireOneLapse(t, records, "ghost")
	if h := leaserecord.Holder(getLease(t, key)); h != "manager-a" {
		t.Errorf("the Lease is held by %q after the lapse, want manager-a", h)
	}
	lapsed := func(g *v1alpha1.LeaderGroup) bool {
		c := condition(g, v1alpha1.ConditionPreferredHolder)
		return c.Reason == v1alpha1.ReasonHandoverLapsed && c.ObservedGeneration == g.Generation
	}
	c.waitFor("payments", 5*time.Second, "the lapse told", lapsed)

	// A spec change is a new attempt: one more handover, one more lapse, no more.
	changed := time.Now()
	g := &v1alpha1.LeaderGroup{}
	g.Name, g.Namespace = "payments", c.namespace
	if err := k8s.Patch(context.Background(), g, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"historyLimit":20}}`))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(reservation + 2*leaseDuration)
	h := records.handovers("ghost", changed)
	t.Logf("handovers to ghost after a spec change: %v", h)
	if len(h) != 1 || !h[0].lapsed {
		t.Errorf("handovers to ghost after a spec change: %v, want one, lapsed", h)
	}
	c.waitFor("payments", 5*time.Second, "the new lapse told", lapsed)

	// So is a return: ghost leaves (its presence Lease goes) and joins again.
	leave()
	if err := clientset.CoordinationV1().Leases(c.namespace).Delete(context.Background(),
		controller.PresenceLeaseName(c.lockName, "ghost"), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	c.waitFor("payments", 2*leaseDuration, "ghost gone", func(g *v1alpha1.LeaderGroup) bool { return !hasCandidates("ghost")(g) })
	returned := time.Now()
	c.announce("ghost")
	time.Sleep(reservation + 2*leaseDuration)
	h = records.handovers("ghost", returned)
	t.Logf("handovers to ghost after it returned: %v", h)
	if len(h) != 1 || !h[0].lapsed {
		t.Errorf("handovers to ghost after it returned: %v, want one, lapsed", h)
	}
}

// The preferred manager stops, gracefully and then killed, and comes back each time.
// Stopped gracefully, it is no longer a candidate at once: nobody hands over to it.
// Killed, its presence Lease looks live until it expires (counted from its last
// renewal seen), so one handover to it may lapse, never more; then the group elects
// as usual. Back, it gets leadership by handover. Counted from the Lease's records.
func TestPreferredManagerStoppedAndKilled(t *testing.T) {
	c := newCluster(t)
	c.heldWithFollower(false)
	key := types.NamespacedName{Namespace: c.namespace, Name: "payments"}
	records := watchRecords(t, key)
	c.prefer("payments", "manager-b")
	waitForLeaseHolder(t, key, "manager-b", 5*time.Second)

	stopped := time.Now()
	c.managers[1].terminate(t)
	waitForLeaseHolder(t, key, "manager-a", 2*time.Second)
	if n := len(records.handovers("manager-b", stopped)); n != 0 {
		t.Errorf("%d handovers to manager-b after it stopped gracefully, want none", n)
	}
	t.Logf("stopped gracefully: leaderless for %s at most", records.leaderless(stopped))
	c.startManager("manager-b", false)
	waitForLeaseHolder(t, key, "manager-b", 2*leaseDuration)

	killed := time.Now()
	c.managers[2].kill(t)
	waitForLeaseHolder(t, key, "manager-a", leaseDuration+reservation+2*retryPeriod)
	tookOver := time.Since(killed)
	// Watch past the killed manager's presence expiry, and then some.
	time.Sleep(leaseDuration + reservation)
	handovers := records.handovers("manager-b", killed)
	gap := records.leaderless(killed)
	t.Logf("killed: manager-a led %s after the kill; handovers to manager-b %v; leaderless for %s at most", tookOver.Round(time.Millisecond), handovers, gap)
	if len(handovers) > 1 || (len(handovers) == 1 && !handovers[0].lapsed) {
		t.Errorf("handovers to a killed manager-b: %v, want at most one, lapsed", handovers)
	}
	if gap > leaseDuration+reservation+2*retryPeriod {
		t.Errorf("leaderless for %s after the kill, want at most leaseDuration + reservation (%s)", gap, leaseDuration+reservation)
	}
	if h := leaserecord.Holder(getLease(t, key)); h != "manager-a" {
		t.Errorf("the Lease is held by %q, want manager-a", h)
	}
	c.startManager("manager-b", false)
	waitForLeaseHolder(t, key, "manager-b", 3*leaseDuration)
}

// A live manager that does not serve the group (its --group-selector excludes it)
// says so in its presence Lease: it is no candidate, and nothing is handed to it.
func TestHandoverToAManagerNotServingTheGroup(t *testing.T) {
	c := newCluster(t)
	c.startManager("manager-a", false)
	c.group("payments")
	c.waitFor("payments", 10*time.Second, "held by manager-a", heldBy("manager-a"))
	c.startManager("manager-s", false, "--group-selector", "tier=other")
	c.waitForPresenceOf("manager-s", 10*time.Second)
	key := types.NamespacedName{Namespace: c.namespace, Name: "payments"}
	records := watchRecords(t, key)
	c.prefer("payments", "manager-s")
	c.waitFor("payments", 5*time.Second, "manager-s is no candidate", func(g *v1alpha1.LeaderGroup) bool {
		return condition(g, v1alpha1.ConditionPreferredHolder).Reason == v1alpha1.ReasonNotACandidate
	})
	time.Sleep(reservation) // a handover would show by now
	if h := records.handovers("manager-s", time.Time{}); len(h) != 0 {
		t.Errorf("handovers to a manager that does not serve the group: %v", h)
	}
}

// requireOneLapse checks from the Lease's records that exactly one handover to to
// happened, that it lapsed within the reservation (with slack for a loaded
// machine), and that the group was led again right after.
func requireOneLapse(t *testing.T, records *leaseRecords, to string) {
	t.Helper()
	handovers := records.handovers(to, time.Time{})
	t.Logf("handovers to %s: %v (reservation %s)", to, handovers, reservation)
	if len(handovers) != 1 || !handovers[0].lapsed {
		t.Fatalf("%d handovers to %s, want exactly one, lapsed", len(handovers), to)
	}
	if gap := handovers[0].leaderless; gap > reservation+2*retryPeriod {
		t.Errorf("leaderless for %s after the handover, want about %s", gap, reservation)
	}
}

// announce makes id a live manager instance for the cluster's lock, as a foreign
// process would: a presence Lease renewed by an elector in the test process, which
// runs no elector for any group. It returns a function that stops renewing.
func (c *cluster) announce(id string) (leave func()) {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c.t.Cleanup(cancel)
	leases, err := election.NewLeaseInformer(clientset, nil, c.namespace)
	if err != nil {
		c.t.Fatal(err)
	}
	leases.Start(ctx)
	e, err := election.New(election.Config{
		Lease:         types.NamespacedName{Namespace: c.namespace, Name: controller.PresenceLeaseName(c.lockName, id)},
		Identity:      id,
		LeaseDuration: leaseDuration, RenewDeadline: renewDeadline, RetryPeriod: retryPeriod,
		Labels:      map[string]string{controller.LabelPresence: c.lockName},
		Annotations: controller.PresenceAnnotations([]string{c.namespace}, ""),
	}, clientset.CoordinationV1(), leases, election.Callbacks{}, election.Options{})
	if err != nil {
		c.t.Fatal(err)
	}
	e.Start(ctx)
	c.t.Cleanup(e.Stop)
	return e.Stop
}

// leaseRecords keeps every version of one Lease a watch delivers, with when it
// arrived.
type leaseRecords struct {
	mu   sync.Mutex
	seen []seenRecord
}

type seenRecord struct {
	at    time.Time
	lease *coordinationv1.Lease
}

func watchRecords(t *testing.T, key types.NamespacedName) *leaseRecords {
	t.Helper()
	r := &leaseRecords{}
	watchVersions(t, key, func(l *coordinationv1.Lease) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.seen = append(r.seen, seenRecord{at: time.Now(), lease: l})
	})
	return r
}

// handoverSeen is one release of the Lease for an identity, as the watch saw it.
type handoverSeen struct {
	at time.Time
	// leaderless is how long the Lease then had no holder; lapsed: the next holder
	// was not the target.
	leaderless time.Duration
	lapsed     bool
}

func (h handoverSeen) String() string {
	return fmt.Sprintf("{leaderless %s, lapsed %t}", h.leaderless.Round(time.Millisecond), h.lapsed)
}

// handovers lists the releases for to seen after since.
func (r *leaseRecords) handovers(to string, since time.Time) []handoverSeen {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []handoverSeen
	for i, s := range r.seen {
		if s.at.Before(since) || leaserecord.HandedOverTo(s.lease) != to || (i > 0 && leaserecord.HandedOverTo(r.seen[i-1].lease) == to) {
			continue
		}
		h := handoverSeen{at: s.at, leaderless: -1}
		for _, next := range r.seen[i+1:] {
			if holder := leaserecord.Holder(next.lease); holder != "" {
				h.leaderless, h.lapsed = next.at.Sub(s.at), holder != to
				break
			}
		}
		out = append(out, h)
	}
	return out
}

// leaderless is the longest time after since that the Lease named no holder
// (until now when it still names none).
func (r *leaseRecords) leaderless(since time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var longest time.Duration
	var from time.Time
	for _, s := range r.seen {
		switch held := leaserecord.Holder(s.lease) != ""; {
		case !held && from.IsZero():
			from = s.at
		case held && !from.IsZero():
			if s.at.After(since) {
				longest = max(longest, s.at.Sub(maxTime(from, since)))
			}
			from = time.Time{}
		}
	}
	if !from.IsZero() {
		longest = max(longest, time.Since(maxTime(from, since)))
	}
	return longest
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Killed, a preferred manager looks live until its presence Lease expires. With a
// group whose Lease expires sooner than that, the survivor takes the Lease over
// while the dead one still looks live, and hands it to it: that one handover
// lapses after the reservation, and no other follows, though the dead manager
// still looks live for a few seconds more.
func TestPreferredManagerKilledCostsOneLapse(t *testing.T) {
	c := newCluster(t)
	c.startManager("manager-a", false)
	c.startManager("manager-b", false)
	// Shorter than the presence Leases' 6s: taken over while manager-b looks live.
	const groupLease, groupRetry = 3 * time.Second, 500 * time.Millisecond
	c.group("fast", func(g *v1alpha1.LeaderGroup) {
		g.Spec.LeaseDuration.Duration, g.Spec.RenewDeadline.Duration, g.Spec.RetryPeriod.Duration = groupLease, 2*time.Second, groupRetry
		g.Spec.PreferredHolder = "manager-b"
	})
	key := types.NamespacedName{Namespace: c.namespace, Name: "fast"}
	waitForLeaseHolder(t, key, "manager-b", 3*leaseDuration)
	records := watchRecords(t, key)
	fastReservation := timing.Timings{LeaseDuration: groupLease, RenewDeadline: 2 * time.Second, RetryPeriod: groupRetry}.HandoverReservation()

	killed := time.Now()
	c.managers[1].kill(t)
	// manager-a takes over after the group's leaseDuration, may hand the Lease to the
	// dead manager-b once, and holds it after that reservation.
	waitForLeaseHolder(t, key, "manager-a", groupLease+fastReservation+2*time.Second)
	// Past manager-b's presence expiry, and a few of the group's retry periods more.
	time.Sleep(leaseDuration + fastReservation)
	h := records.handovers("manager-b", killed)
	t.Logf("after the kill: handovers to manager-b %v (reservation %s)", h, fastReservation)
	if len(h) != 1 || !h[0].lapsed || h[0].leaderless > fastReservation+time.Second {
		t.Errorf("handovers to the killed manager-b: %v, want one, lapsed within about %s", h, fastReservation)
	}
	if holder := leaserecord.Holder(getLease(t, key)); holder != "manager-a" {
		t.Errorf("the Lease is held by %q, want manager-a", holder)
	}
}
