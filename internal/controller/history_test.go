package controller

import (
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/leaserecord"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

// lease builds a Lease held by holder (or released when holder is "") at epoch,
// acquired at acquiredSec, with annotations given as key=value pairs.
func lease(holder string, epoch int32, acquiredSec int, annotations ...string) *coordinationv1.Lease {
	l := &coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{
		LeaseTransitions: ptr.To(epoch),
		AcquireTime:      &metav1.MicroTime{Time: at(acquiredSec)},
	}}
	if holder != "" {
		l.Spec.HolderIdentity = ptr.To(holder)
	}
	for _, kv := range annotations {
		k, v, _ := strings.Cut(kv, "=")
		if l.Annotations == nil {
			l.Annotations = map[string]string{}
		}
		l.Annotations[k] = v
	}
	return l
}

// renewed sets the record's renewTime (at renewSec) and duration.
func renewed(l *coordinationv1.Lease, renewSec int, seconds int32) *coordinationv1.Lease {
	l.Spec.RenewTime, l.Spec.LeaseDurationSeconds = &metav1.MicroTime{Time: at(renewSec)}, ptr.To(seconds)
	return l
}

func how(h leaserecord.How) string { return leaserecord.AnnotationAcquiredHow + "=" + string(h) }
func releasedBy(id string, sec int) []string {
	return []string{leaserecord.AnnotationReleasedBy + "=" + id, leaserecord.AnnotationReleasedAt + "=" + at(sec).Format(time.RFC3339Nano)}
}

func open(holder string, epoch int32, acquiredSec int, start v1alpha1.StartReason) v1alpha1.HistoryEntry {
	return v1alpha1.HistoryEntry{Holder: holder, Transition: epoch, AcquiredAt: metav1.NewTime(at(acquiredSec)), StartReason: start}
}

func ended(e v1alpha1.HistoryEntry, endSec int, reason v1alpha1.EndReason) v1alpha1.HistoryEntry {
	e.EndedAt, e.EndReason = ptr.To(metav1.NewTime(at(endSec))), reason
	return e
}

func gap(e v1alpha1.HistoryEntry, sec int) v1alpha1.HistoryEntry {
	e.LeaderlessFor = &metav1.Duration{Duration: time.Duration(sec) * time.Second}
	return e
}

func missed(e v1alpha1.HistoryEntry, n int32) v1alpha1.HistoryEntry {
	e.MissedTransitions = n
	return e
}

func TestNextHistory(t *testing.T) {
	a1 := open("a", 1, 0, v1alpha1.StartElected)
	cases := []struct {
		name       string
		prev       []v1alpha1.HistoryEntry
		obs        observation
		want       []v1alpha1.HistoryEntry
		wantEvents []string
	}{{
		name: "no lease, no history",
		obs:  observation{now: at(1)},
	}, {
		name:       "first holder, elected by our elector",
		obs:        observation{lease: lease("a", 1, 0, how(leaserecord.Elected)), now: at(1)},
		want:       []v1alpha1.HistoryEntry{a1},
		wantEvents: []string{"LeaderElected a leads (epoch 1, Elected)"},
	}, {
		name:       "first holder of a fresh lease, by client-go",
		obs:        observation{lease: lease("x", 0, 0), now: at(1)},
		want:       []v1alpha1.HistoryEntry{open("x", 0, 0, v1alpha1.StartElected)},
		wantEvents: []string{"LeaderElected x leads (epoch 0, Elected)"},
	}, {
		name:       "first seen mid-life, by client-go: unknown start",
		obs:        observation{lease: lease("x", 7, 0), now: at(1)},
		want:       []v1alpha1.HistoryEntry{open("x", 7, 0, v1alpha1.StartUnknown)},
		wantEvents: []string{"LeaderElected x leads (epoch 7, Unknown)"},
	}, {
		name: "a renewal changes nothing",
		prev: []v1alpha1.HistoryEntry{a1},
		obs:  observation{lease: lease("a", 1, 0, how(leaserecord.Elected)), now: at(30)},
		want: []v1alpha1.HistoryEntry{a1},
	}, {
		name:       "release seen",
		prev:       []v1alpha1.HistoryEntry{a1},
		obs:        observation{lease: lease("", 1, 0, releasedBy("a", 9)...), now: at(10)},
		want:       []v1alpha1.HistoryEntry{ended(a1, 9, v1alpha1.EndReleased)},
		wantEvents: []string{"LeaderLost a released the lease (epoch 1)"},
	}, {
		name:       "release by client-go, which records nothing: seen time",
		prev:       []v1alpha1.HistoryEntry{a1},
		obs:        observation{lease: lease("", 1, 0), now: at(10)},
		want:       []v1alpha1.HistoryEntry{ended(a1, 10, v1alpha1.EndReleased)},
		wantEvents: []string{"LeaderLost a released the lease (epoch 1)"},
	}, {
		name:       "takeover after a seen release",
		prev:       []v1alpha1.HistoryEntry{ended(a1, 9, v1alpha1.EndReleased)},
		obs:        observation{lease: lease("b", 2, 9, how(leaserecord.AfterRelease)), now: at(10)},
		want:       []v1alpha1.HistoryEntry{gap(open("b", 2, 9, v1alpha1.StartAfterRelease), 0), ended(a1, 9, v1alpha1.EndReleased)},
		wantEvents: []string{"LeaderElected b leads (epoch 2, AfterRelease)"},
	}, {
		name: "takeover after an unseen release: the new record tells both",
		prev: []v1alpha1.HistoryEntry{a1},
		obs: observation{lease: lease("b", 2, 10, append(releasedBy("a", 9), how(leaserecord.AfterRelease))...),
			now: at(11)},
		want:       []v1alpha1.HistoryEntry{gap(open("b", 2, 10, v1alpha1.StartAfterRelease), 1), ended(a1, 9, v1alpha1.EndReleased)},
		wantEvents: []string{"LeaderLost a released the lease (epoch 1)", "LeaderElected b leads (epoch 2, AfterRelease)"},
	}, {
		name:       "expiry seen on the observer's clock",
		prev:       []v1alpha1.HistoryEntry{a1},
		obs:        observation{lease: lease("a", 1, 0), expiredAt: ptr.To(at(20)), now: at(20)},
		want:       []v1alpha1.HistoryEntry{ended(a1, 20, v1alpha1.EndExpired)},
		wantEvents: []string{"LeaseExpired a stopped renewing the lease (epoch 1)"},
	}, {
		name:       "takeover after a seen expiry, by client-go",
		prev:       []v1alpha1.HistoryEntry{ended(a1, 20, v1alpha1.EndExpired)},
		obs:        observation{lease: lease("b", 2, 21), now: at(21)},
		want:       []v1alpha1.HistoryEntry{gap(open("b", 2, 21, v1alpha1.StartAfterExpiry), 1), ended(a1, 20, v1alpha1.EndExpired)},
		wantEvents: []string{"LeaderElected b leads (epoch 2, AfterExpiry)"},
	}, {
		name:       "takeover after an unseen expiry",
		prev:       []v1alpha1.HistoryEntry{a1},
		obs:        observation{lease: lease("b", 2, 21, how(leaserecord.AfterExpiry)), now: at(22)},
		want:       []v1alpha1.HistoryEntry{open("b", 2, 21, v1alpha1.StartAfterExpiry), ended(a1, 21, v1alpha1.EndExpired)},
		wantEvents: []string{"LeaseExpired a stopped renewing the lease (epoch 1)", "LeaderElected b leads (epoch 2, AfterExpiry)"},
	}, {
		name:       "same identity re-acquires after a loss: a new term",
		prev:       []v1alpha1.HistoryEntry{ended(a1, 20, v1alpha1.EndExpired)},
		obs:        observation{lease: lease("a", 2, 25, how(leaserecord.AfterExpiry)), now: at(26)},
		want:       []v1alpha1.HistoryEntry{gap(open("a", 2, 25, v1alpha1.StartAfterExpiry), 5), ended(a1, 20, v1alpha1.EndExpired)},
		wantEvents: []string{"LeaderElected a leads (epoch 2, AfterExpiry)"},
	}, {
		name:       "missed transitions (say, no status writer for a while): counted, ends unknown",
		prev:       []v1alpha1.HistoryEntry{a1},
		obs:        observation{lease: lease("c", 4, 50, how(leaserecord.AfterRelease)), now: at(60)},
		want:       []v1alpha1.HistoryEntry{missed(open("c", 4, 50, v1alpha1.StartAfterRelease), 2), ended(a1, 50, v1alpha1.EndUnknown)},
		wantEvents: []string{"LeaderLost a no longer leads (epoch 1, Unknown)", "LeaderElected c leads (epoch 4, AfterRelease)"},
	}, {
		name:       "a holder called expired renews after all: its term goes on",
		prev:       []v1alpha1.HistoryEntry{ended(a1, 20, v1alpha1.EndExpired)},
		obs:        observation{lease: renewed(lease("a", 1, 0), 19, 15), now: at(21)},
		want:       []v1alpha1.HistoryEntry{a1},
		wantEvents: nil,
	}, {
		name: "a new status writer's first look at an expired record: still ended, not told again",
		prev: []v1alpha1.HistoryEntry{ended(a1, 20, v1alpha1.EndExpired)},
		obs:  observation{lease: renewed(lease("a", 1, 0), 5, 15), now: at(100)},
		want: []v1alpha1.HistoryEntry{ended(a1, 20, v1alpha1.EndExpired)},
	}, {
		name: "a lagging view of a released term: still released",
		prev: []v1alpha1.HistoryEntry{ended(a1, 9, v1alpha1.EndReleased)},
		obs:  observation{lease: renewed(lease("a", 1, 0, how(leaserecord.Elected)), 8, 15), now: at(10)},
		want: []v1alpha1.HistoryEntry{ended(a1, 9, v1alpha1.EndReleased)},
	}, {
		name:       "handover seen: the release names who it is for",
		prev:       []v1alpha1.HistoryEntry{a1},
		obs:        observation{lease: lease("", 1, 0, append(releasedBy("a", 9), leaserecord.AnnotationHandoverTo+"=b")...), now: at(10)},
		want:       []v1alpha1.HistoryEntry{ended(a1, 9, v1alpha1.EndHandover)},
		wantEvents: []string{"LeaderLost a no longer leads (epoch 1, Handover)"},
	}, {
		name:       "takeover after an unseen handover",
		prev:       []v1alpha1.HistoryEntry{a1},
		obs:        observation{lease: lease("b", 2, 10, append(releasedBy("a", 9), how(leaserecord.Handover))...), now: at(11)},
		want:       []v1alpha1.HistoryEntry{gap(open("b", 2, 10, v1alpha1.StartHandover), 1), ended(a1, 9, v1alpha1.EndHandover)},
		wantEvents: []string{"LeaderLost a no longer leads (epoch 1, Handover)", "LeaderElected b leads (epoch 2, Handover)"},
	}, {
		name:       "lease deleted under a holder: unknown",
		prev:       []v1alpha1.HistoryEntry{a1},
		obs:        observation{now: at(30)},
		want:       []v1alpha1.HistoryEntry{ended(a1, 30, v1alpha1.EndUnknown)},
		wantEvents: []string{"LeaderLost a no longer leads (epoch 1, Unknown)"},
	}, {
		name:       "first seen already expired",
		obs:        observation{lease: lease("z", 3, 0), expiredAt: ptr.To(at(15)), now: at(15)},
		want:       []v1alpha1.HistoryEntry{ended(open("z", 3, 0, v1alpha1.StartUnknown), 15, v1alpha1.EndExpired)},
		wantEvents: []string{"LeaderElected z leads (epoch 3, Unknown)", "LeaseExpired z stopped renewing the lease (epoch 3)"},
	}, {
		name:       "an expired term stays ended, and is told once",
		prev:       []v1alpha1.HistoryEntry{ended(a1, 20, v1alpha1.EndExpired)},
		obs:        observation{lease: lease("a", 1, 0), expiredAt: ptr.To(at(20)), now: at(40)},
		want:       []v1alpha1.HistoryEntry{ended(a1, 20, v1alpha1.EndExpired)},
		wantEvents: nil,
	}, {
		name: "a lower epoch is an old view (a new status writer's informer lagging): nothing changes",
		prev: []v1alpha1.HistoryEntry{open("b", 6, 30, v1alpha1.StartAfterRelease), ended(open("a", 5, 20, v1alpha1.StartAfterExpiry), 29, v1alpha1.EndReleased)},
		obs:  observation{lease: lease("a", 5, 20, how(leaserecord.AfterExpiry)), now: at(31)},
		want: []v1alpha1.HistoryEntry{open("b", 6, 30, v1alpha1.StartAfterRelease), ended(open("a", 5, 20, v1alpha1.StartAfterExpiry), 29, v1alpha1.EndReleased)},
	}, {
		name: "a lower epoch released: still an old view",
		prev: []v1alpha1.HistoryEntry{open("b", 6, 30, v1alpha1.StartAfterRelease)},
		obs:  observation{lease: lease("", 5, 20, releasedBy("a", 29)...), now: at(31)},
		want: []v1alpha1.HistoryEntry{open("b", 6, 30, v1alpha1.StartAfterRelease)},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			prevCopy := append([]v1alpha1.HistoryEntry(nil), tc.prev...)
			got, events := nextHistory(tc.prev, tc.obs, 10)
			if !equalHistory(got, tc.want) {
				t.Errorf("history:\n got %s\nwant %s", describe(got), describe(tc.want))
			}
			var gotEvents []string
			for _, e := range events {
				gotEvents = append(gotEvents, e.reason+" "+e.message)
			}
			if strings.Join(gotEvents, "\n") != strings.Join(tc.wantEvents, "\n") {
				t.Errorf("events:\n got %q\nwant %q", gotEvents, tc.wantEvents)
			}
			if !equalHistory(tc.prev, prevCopy) {
				t.Errorf("the previous history was modified")
			}
		})
	}
}

func TestNextHistoryKeepsTheLimit(t *testing.T) {
	var history []v1alpha1.HistoryEntry
	for epoch := int32(1); epoch <= 5; epoch++ {
		history, _ = nextHistory(history, observation{lease: lease("a", epoch, int(epoch)), now: at(int(epoch))}, 3)
	}
	if len(history) != 3 || history[0].Transition != 5 || history[2].Transition != 3 {
		t.Errorf("want epochs 5, 4, 3; got %s", describe(history))
	}
}

func equalHistory(a, b []v1alpha1.HistoryEntry) bool {
	return describe(a) == describe(b)
}

func describe(h []v1alpha1.HistoryEntry) string {
	var parts []string
	for _, e := range h {
		s := e.Holder + "/" + string(rune('0'+e.Transition)) + " from " + e.AcquiredAt.UTC().Format("15:04:05") + " " + string(e.StartReason)
		if e.EndedAt != nil {
			s += " to " + e.EndedAt.UTC().Format("15:04:05") + " " + string(e.EndReason)
		}
		if e.LeaderlessFor != nil {
			s += " gap " + e.LeaderlessFor.Duration.String()
		}
		if e.MissedTransitions > 0 {
			s += " missed " + string(rune('0'+e.MissedTransitions))
		}
		parts = append(parts, "["+s+"]")
	}
	return strings.Join(parts, " ")
}

// TestHistoryNeverGoesBack folds the views a status writer can get, in any order a
// lagging informer may deliver them, and checks that epochs in history only grow
// and each LeaseExpired is told once.
func TestHistoryNeverGoesBack(t *testing.T) {
	views := []observation{
		{lease: lease("a", 5, 0, how(leaserecord.AfterExpiry)), now: at(1)},
		{lease: lease("b", 6, 2, append(releasedBy("a", 2), how(leaserecord.AfterRelease))...), now: at(3)},
		{lease: lease("a", 5, 0, how(leaserecord.AfterExpiry)), now: at(4)}, // lagging
		{lease: lease("b", 6, 2, how(leaserecord.AfterRelease)), expiredAt: ptr.To(at(20)), now: at(20)},
		{lease: lease("b", 6, 2, how(leaserecord.AfterRelease)), expiredAt: ptr.To(at(20)), now: at(25)},
		{lease: lease("", 5, 0, releasedBy("a", 2)...), now: at(26)}, // lagging
		{lease: lease("b", 6, 2, how(leaserecord.AfterRelease)), expiredAt: ptr.To(at(20)), now: at(30)},
	}
	var history []v1alpha1.HistoryEntry
	expired := 0
	for _, v := range views {
		var events []event
		history, events = nextHistory(history, v, 10)
		for _, e := range events {
			if e.reason == EventLeaseExpired {
				expired++
			}
		}
		for i := 1; i < len(history); i++ {
			if history[i].Transition >= history[i-1].Transition {
				t.Fatalf("history went back in epochs: %s", describe(history))
			}
		}
	}
	if expired != 1 {
		t.Errorf("%d LeaseExpired events for one expiry, want 1", expired)
	}
	if len(history) != 2 || history[0].Transition != 6 || history[0].EndReason != v1alpha1.EndExpired {
		t.Errorf("history %s, want b/6 ended Expired after a/5", describe(history))
	}
}
