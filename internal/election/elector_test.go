package election

import (
	"context"
	"fmt"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"github.com/election-manager/election-manager/internal/leaserecord"
	"github.com/election-manager/election-manager/internal/testutil"
)

// startCandidates starts one process per id, each a candidate for key.
func startCandidates(t *testing.T, key types.NamespacedName, rec *recorder, timings Config, ids ...string) map[string]*process {
	t.Helper()
	procs := map[string]*process{}
	for _, id := range ids {
		p := startProcess(t, id, rec, key.Namespace)
		p.join(t, key, timings)
		procs[id] = p
	}
	return procs
}

func waitLeader(t *testing.T, rec *recorder, key types.NamespacedName, timeout time.Duration, not string) string {
	t.Helper()
	var id string
	eventually(t, timeout, "a leader other than "+not, func() bool {
		id = rec.leader(key.String())
		return id != "" && id != not
	})
	return id
}

func lastTerm(t *testing.T, rec *recorder, key types.NamespacedName, id string) interval {
	t.Helper()
	terms := rec.terms(key.String())
	for i := len(terms) - 1; i >= 0; i-- {
		if terms[i].id == id {
			return terms[i]
		}
	}
	t.Fatalf("%s never led %s", id, key)
	return interval{}
}

// acquisition waits for the history to hold n acquisitions (the watch may lag the
// callbacks) and returns the n-th.
func acquisition(t *testing.T, h *history, n int) *coordinationv1.Lease {
	t.Helper()
	eventually(t, 5*time.Second, fmt.Sprintf("acquisition #%d in the lease's history", n), func() bool { return len(h.acquisitions()) >= n })
	return h.acquisitions()[n-1]
}

func TestElectsOneAndHandsOverOnRelease(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "lock"}
	rec, hist := newRecorder(t), watchLease(t, key)
	// A retry period far longer than the handover bound below: a takeover that fast
	// comes from the informer, not from a poll.
	timings := Config{LeaseDuration: 15 * time.Second, RenewDeadline: 8 * time.Second, RetryPeriod: 5 * time.Second}
	procs := startCandidates(t, key, rec, timings, "a", "b", "c")

	leader := waitLeader(t, rec, key, 10*time.Second, "")
	leaders := 0
	for _, p := range procs {
		if p.reg.Get(key.String()).IsLeader() {
			leaders++
		}
	}
	if leaders != 1 {
		t.Errorf("%d electors report leading, want 1", leaders)
	}
	first := acquisition(t, hist, 1)
	if leaserecord.Holder(first) != leader || leaserecord.Epoch(first) != 1 || first.Annotations[leaserecord.AnnotationAcquiredHow] != string(leaserecord.Elected) {
		t.Errorf("first acquisition: holder %q epoch %d how %q, want %s 1 Elected",
			leaserecord.Holder(first), leaserecord.Epoch(first), first.Annotations[leaserecord.AnnotationAcquiredHow], leader)
	}

	for round := range 2 {
		old := leader
		oldEpoch := lastTerm(t, rec, key, old).epoch
		procs[old].reg.Stop(key.String())
		stopped := time.Now()
		leader = waitLeader(t, rec, key, 5*time.Second, old)
		oldTerm, newTerm := lastTerm(t, rec, key, old), lastTerm(t, rec, key, leader)
		if d := newTerm.start.Sub(stopped); d > time.Second {
			t.Errorf("handover took %s after the release, want < 1s (retryPeriod %s)", d, timings.RetryPeriod)
		}

		acq := acquisition(t, hist, round+2)
		// The release: no holder, epoch kept, who and when recorded; sent after the old
		// leader's view of leading ended.
		var release *coordinationv1.Lease
		for _, v := range hist.all() {
			if leaserecord.Holder(v) == "" && v.Annotations[leaserecord.AnnotationReleasedBy] == old && leaserecord.Epoch(v) == oldEpoch {
				release = v
			}
		}
		if release == nil {
			t.Fatalf("no released version by %s in epoch %d", old, oldEpoch)
		}
		at, err := time.Parse(time.RFC3339Nano, release.Annotations[leaserecord.AnnotationReleasedAt])
		if err != nil {
			t.Errorf("released-at %q: %v", release.Annotations[leaserecord.AnnotationReleasedAt], err)
		} else if at.Before(oldTerm.end) {
			t.Errorf("release sent at %s, before leadership ended at %s", at.Format(time.StampMicro), oldTerm.end.Format(time.StampMicro))
		}
		if leaserecord.Holder(acq) != leader || leaserecord.Epoch(acq) != oldEpoch+1 || acq.Annotations[leaserecord.AnnotationAcquiredHow] != string(leaserecord.AfterRelease) ||
			acq.Annotations[leaserecord.AnnotationReleasedBy] != old || newTerm.epoch != oldEpoch+1 {
			t.Errorf("acquisition after release: holder %q epoch %d (callback %d) annotations %v, want %s %d AfterRelease released-by %s",
				leaserecord.Holder(acq), leaserecord.Epoch(acq), newTerm.epoch, acq.Annotations, leader, oldEpoch+1, old)
		}
	}
}

func TestCutLeaderEndsOnTimeAndRecampaigns(t *testing.T) {
	for _, mode := range []testutil.ProxyMode{testutil.Refuse, testutil.Blackhole} {
		t.Run(mode.String(), func(t *testing.T) {
			ns := newNamespace(t)
			key := types.NamespacedName{Namespace: ns, Name: "lock"}
			rec, hist := newRecorder(t), watchLease(t, key)
			procs := startCandidates(t, key, rec, fast, "a", "b")
			leaderID := waitLeader(t, rec, key, 10*time.Second, "")
			followerID := map[string]string{"a": "b", "b": "a"}[leaderID]
			cut, other := procs[leaderID], procs[followerID]
			// Let the leader renew at least once, so the bound below is about renewals.
			eventually(t, 5*time.Second, "a renewal", func() bool {
				l := hist.last()
				return l != nil && !l.Spec.RenewTime.Equal(l.Spec.AcquireTime)
			})

			cut.proxy.SetMode(mode)
			waitLeader(t, rec, key, fast.RenewDeadline+fast.LeaseDuration+5*time.Second, leaderID)
			oldTerm, newTerm := lastTerm(t, rec, key, leaderID), lastTerm(t, rec, key, followerID)
			lastRenew := hist.lastRenewal(leaderID, oldTerm.epoch)
			if oldTerm.end.IsZero() {
				t.Fatalf("%s still leads after being cut off", leaderID)
			}
			requireTakeoverBounds(t, oldTerm, newTerm, lastRenew, fast, 2*slack)
			acq := acquisition(t, hist, 2)
			if leaserecord.Holder(acq) != followerID || leaserecord.Epoch(acq) != oldTerm.epoch+1 || acq.Annotations[leaserecord.AnnotationAcquiredHow] != string(leaserecord.AfterExpiry) {
				t.Errorf("takeover: holder %q epoch %d how %q, want %s %d AfterExpiry",
					leaserecord.Holder(acq), leaserecord.Epoch(acq), acq.Annotations[leaserecord.AnnotationAcquiredHow], followerID, oldTerm.epoch+1)
			}

			// Reconnect: the old leader sees the new one and leaves its lease alone.
			cut.proxy.SetMode(testutil.Pass)
			old := cut.reg.Get(key.String())
			eventually(t, 30*time.Second, "the old leader to see the new one", func() bool {
				info := old.Leader()
				return info.Holder == followerID && info.Epoch == newTerm.epoch && !info.Leading
			})
			n := len(hist.all())
			eventually(t, 10*time.Second, "four more renewals by the new leader", func() bool { return len(hist.all()) >= n+4 })
			for _, v := range hist.all() {
				if leaserecord.Epoch(v) > leaserecord.Epoch(acq) || (leaserecord.Epoch(v) == leaserecord.Epoch(acq) && leaserecord.Holder(v) != followerID) {
					t.Errorf("the new leader's lease was disturbed: holder %q epoch %d annotations %v", leaserecord.Holder(v), leaserecord.Epoch(v), v.Annotations)
				}
			}

			// Re-campaign: the old leader, a follower again by itself, takes over on release.
			other.reg.Stop(key.String())
			waitLeader(t, rec, key, 5*time.Second, followerID)
			back := acquisition(t, hist, 3)
			if leaserecord.Holder(back) != leaderID || leaserecord.Epoch(back) != newTerm.epoch+1 || back.Annotations[leaserecord.AnnotationAcquiredHow] != string(leaserecord.AfterRelease) {
				t.Errorf("re-campaign: holder %q epoch %d how %q, want %s %d AfterRelease",
					leaserecord.Holder(back), leaserecord.Epoch(back), back.Annotations[leaserecord.AnnotationAcquiredHow], leaderID, newTerm.epoch+1)
			}
		})
	}
}

func TestSameIdentityReacquiresWithNewEpoch(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "lock"}
	rec, hist := newRecorder(t), watchLease(t, key)
	p := startCandidates(t, key, rec, fast, "a")["a"]
	waitLeader(t, rec, key, 10*time.Second, "")
	p.proxy.SetMode(testutil.Refuse)
	eventually(t, fast.RenewDeadline+5*time.Second, "leadership to end", func() bool { return rec.leader(key.String()) == "" })
	p.proxy.SetMode(testutil.Pass)
	waitLeader(t, rec, key, fast.LeaseDuration+30*time.Second, "")

	terms := rec.terms(key.String())
	if len(terms) != 2 || terms[1].epoch != terms[0].epoch+1 {
		t.Fatalf("terms %+v, want two with consecutive epochs", terms)
	}
	if early := hist.lastRenewal("a", terms[0].epoch).Add(fast.LeaseDuration).Sub(terms[1].start); early > 0 {
		t.Errorf("re-acquired its own lease %s before it expired", early)
	}
	acq := acquisition(t, hist, 2)
	if leaserecord.Holder(acq) != "a" || leaserecord.Epoch(acq) != terms[1].epoch || acq.Annotations[leaserecord.AnnotationAcquiredHow] != string(leaserecord.AfterExpiry) {
		t.Errorf("re-acquisition: holder %q epoch %d how %q, want a %d AfterExpiry",
			leaserecord.Holder(acq), leaserecord.Epoch(acq), acq.Annotations[leaserecord.AnnotationAcquiredHow], terms[1].epoch)
	}
}

func TestRestartWithNewTimingsKeepsLeadership(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "lock"}
	rec, hist := newRecorder(t), watchLease(t, key)
	p := startProcess(t, "a", rec, ns)
	e := p.join(t, key, fast)
	waitLeader(t, rec, key, 10*time.Second, "")
	epoch := e.Leader().Epoch

	bad := fast
	bad.RenewDeadline = bad.LeaseDuration
	bad.Lease, bad.Identity = key, "a"
	if _, err := p.reg.Ensure(key.String(), bad, Callbacks{}); err == nil {
		t.Errorf("Ensure accepted renewDeadline = leaseDuration")
	}

	slower := Config{LeaseDuration: 5 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: time.Second}
	if again := p.join(t, key, slower); again != e {
		t.Fatalf("Ensure with new timings replaced the elector")
	}
	eventually(t, 5*time.Second, "a renewal with the new leaseDuration", func() bool {
		l := hist.last()
		return l != nil && *l.Spec.LeaseDurationSeconds == 5
	})
	eventually(t, 5*time.Second, "a renewal under the new renewDeadline", func() bool {
		info := e.Leader()
		return info.LeadingUntil.Sub(info.LastRenewal) == slower.RenewDeadline
	})
	terms := rec.terms(key.String())
	if len(terms) != 1 || !terms[0].end.IsZero() || !e.IsLeader() || e.Leader().Epoch != epoch || leaserecord.Epoch(hist.last()) != epoch {
		t.Errorf("leadership or epoch changed on restart: terms %+v, leader %v, epoch %d (lease %d), want %d",
			terms, e.IsLeader(), e.Leader().Epoch, leaserecord.Epoch(hist.last()), epoch)
	}
}

func TestFollowersMakeNoRequests(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "lock"}
	rec := newRecorder(t)
	procs := startCandidates(t, key, rec, fast, "a", "b", "c")
	leaderID := waitLeader(t, rec, key, 10*time.Second, "")
	// Let the losers of the initial race settle, then count over four renewals.
	before := map[string]map[string]int{}
	eventually(t, 5*time.Second, "two renewals", func() bool { return procs[leaderID].requests.snapshot()["PUT"] >= 2 })
	for id, p := range procs {
		before[id] = p.requests.snapshot()
	}
	eventually(t, 10*time.Second, "four more renewals", func() bool {
		return procs[leaderID].requests.snapshot()["PUT"] >= before[leaderID]["PUT"]+4
	})
	for id, p := range procs {
		after := p.requests.snapshot()
		for _, verb := range []string{"GET", "POST", "PUT", "DELETE", "PATCH", "LIST"} {
			d := after[verb] - before[id][verb]
			switch {
			case id != leaderID && d != 0:
				t.Errorf("follower %s made %d lease %s requests", id, d, verb)
			case id == leaderID && verb != "PUT" && d != 0:
				t.Errorf("leader %s made %d lease %s requests, want only PUTs", id, d, verb)
			}
		}
	}
}

// Field ownership on a Lease cost kube-apiserver ~40 % of each renewal
// (BenchmarkWriteCost); the writes reset it, so once renewed a Lease keeps none.
func TestRenewedLeaseKeepsNoFieldOwnership(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "lock"}
	rec := newRecorder(t)
	startCandidates(t, key, rec, fast, "a")
	waitLeader(t, rec, key, 10*time.Second, "")
	var l *coordinationv1.Lease
	eventually(t, 10*time.Second, "a's renewal in the Lease", func() bool {
		var err error
		l, err = admin.CoordinationV1().Leases(ns).Get(context.Background(), key.Name, metav1.GetOptions{})
		return err == nil && leaserecord.Holder(l) == "a" && l.Spec.RenewTime.After(l.Spec.AcquireTime.Time)
	})
	if len(l.ManagedFields) != 0 {
		t.Errorf("a renewed Lease keeps field ownership: %+v", l.ManagedFields)
	}
}

func TestMetadataChangeKeepsLeadership(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "lock"}
	rec, hist := newRecorder(t), watchLease(t, key)
	p := startCandidates(t, key, rec, fast, "a")["a"]
	waitLeader(t, rec, key, 10*time.Second, "")
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		l, err := admin.CoordinationV1().Leases(ns).Get(context.Background(), key.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		l.Labels = map[string]string{"touched": "yes"}
		_, err = admin.CoordinationV1().Leases(ns).Update(context.Background(), l, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	puts := p.requests.snapshot()["PUT"]
	eventually(t, 5*time.Second, "a renewal that keeps the label", func() bool {
		l := hist.last()
		return l.Labels["touched"] == "yes" && p.requests.snapshot()["PUT"] > puts+1 && leaserecord.Holder(l) == "a"
	})
	if terms := rec.terms(key.String()); len(terms) != 1 || !terms[0].end.IsZero() {
		t.Errorf("a metadata change ended leadership: %+v", terms)
	}
	if gets := p.requests.snapshot()["GET"]; gets != 0 {
		t.Errorf("the leader read the lease %d times, want the informer only", gets)
	}
}

func TestLeaseDeletedUnderLeader(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "lock"}
	rec, hist := newRecorder(t), watchLease(t, key)
	startCandidates(t, key, rec, fast, "a", "b")
	leaderID := waitLeader(t, rec, key, 10*time.Second, "")
	epoch := lastTerm(t, rec, key, leaderID).epoch
	if err := admin.CoordinationV1().Leases(ns).Delete(context.Background(), key.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, fast.LeaseDuration+10*time.Second, "a leader after the deletion", func() bool {
		terms := rec.terms(key.String())
		last := terms[len(terms)-1]
		return last.epoch > epoch && last.end.IsZero()
	})
	acq := acquisition(t, hist, 2)
	if leaserecord.Epoch(acq) != epoch+1 || acq.Annotations[leaserecord.AnnotationAcquiredHow] != string(leaserecord.Elected) || hist.deleted.Load() != 1 {
		t.Errorf("after deletion: epoch %d how %q deletions %d, want %d Elected 1", leaserecord.Epoch(acq), acq.Annotations[leaserecord.AnnotationAcquiredHow], hist.deleted.Load(), epoch+1)
	}
}

func TestLeadershipEndsWhenTheCallNeverReturns(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "lock"}
	rec, hist := newRecorder(t), watchLease(t, key)
	procs := startCandidates(t, key, rec, fast, "a", "b")
	leaderID := waitLeader(t, rec, key, 10*time.Second, "")
	eventually(t, 5*time.Second, "a renewal", func() bool {
		l := hist.last()
		return l != nil && !l.Spec.RenewTime.Equal(l.Spec.AcquireTime)
	})
	cut := procs[leaderID]
	cut.requests.hangPuts.Store(true) // the next renewal never returns, whatever its context says
	waitLeader(t, rec, key, fast.RenewDeadline+fast.LeaseDuration+5*time.Second, leaderID)
	oldTerm := lastTerm(t, rec, key, leaderID)
	lastRenew := hist.lastRenewal(leaderID, oldTerm.epoch)
	if oldTerm.end.IsZero() {
		t.Fatalf("%s still leads", leaderID)
	}
	if late := oldTerm.end.Sub(lastRenew.Add(fast.RenewDeadline)); late > slack {
		t.Errorf("leadership ended %s after the last renewal's send time + renewDeadline", late)
	}
	e := cut.reg.Get(key.String())
	if e.IsLeader() {
		t.Errorf("IsLeader() = true after the deadline")
	}
	start := time.Now()
	cut.reg.Stop(key.String())
	if d := time.Since(start); d > fast.RenewDeadline+slack {
		t.Errorf("Stop took %s with a call that never returns, want at most renewDeadline", d)
	}
}

func TestNoReleaseAfterLostLeadership(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "lock"}
	rec, hist := newRecorder(t), watchLease(t, key)
	procs := startCandidates(t, key, rec, fast, "a", "b")
	leaderID := waitLeader(t, rec, key, 10*time.Second, "")
	followerID := map[string]string{"a": "b", "b": "a"}[leaderID]
	cut := procs[leaderID]
	cut.proxy.SetMode(testutil.Refuse)
	waitLeader(t, rec, key, fast.RenewDeadline+fast.LeaseDuration+5*time.Second, leaderID)
	newEpoch := lastTerm(t, rec, key, followerID).epoch
	cut.proxy.SetMode(testutil.Pass)
	old := cut.reg.Get(key.String())
	eventually(t, 30*time.Second, "the old leader to see the new one", func() bool { return old.Leader().Holder == followerID })

	// A graceful stop of an elector that lost its lease must not release anything.
	cut.reg.Stop(key.String())
	n := len(hist.all())
	eventually(t, 5*time.Second, "two more renewals by the new leader", func() bool { return len(hist.all()) >= n+2 })
	for _, v := range hist.all() {
		if v.Annotations[leaserecord.AnnotationReleasedBy] == leaderID || (leaserecord.Epoch(v) == newEpoch && leaserecord.Holder(v) != followerID) {
			t.Errorf("the stopped ex-leader touched the new leader's lease: holder %q epoch %d annotations %v", leaserecord.Holder(v), leaserecord.Epoch(v), v.Annotations)
		}
	}
	if rec.leader(key.String()) != followerID {
		t.Errorf("leader is %q, want %s", rec.leader(key.String()), followerID)
	}
}

// requireTakeoverBounds checks a takeover after a lost connection from the two
// leaders' own records: the old one stopped by its last renewal's send time +
// renewDeadline, and the new one started no earlier than that renewal +
// leaseDuration, and no later than lateBy after it.
func requireTakeoverBounds(t *testing.T, old, next interval, lastRenewal time.Time, timings Config, lateBy time.Duration) {
	t.Helper()
	if late := old.end.Sub(lastRenewal.Add(timings.RenewDeadline)); late > slack {
		t.Errorf("%s stopped leading %s after its last renewal's send time + renewDeadline", old.id, late)
	}
	if early := lastRenewal.Add(timings.LeaseDuration).Sub(next.start); early > 0 {
		t.Errorf("%s took over %s before leaseDuration had passed since the last renewal", next.id, early)
	}
	if late := next.start.Sub(lastRenewal.Add(timings.LeaseDuration)); late > lateBy {
		t.Errorf("%s took over %s after the lease expired, want at expiry", next.id, late)
	}
}
