package controller

import (
	"fmt"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/leaserecord"
)

// FuzzHistory folds arbitrary sequences of Lease records — acquisitions of every
// kind, releases, handovers, deletions, foreign writers with or without
// annotations, epoch jumps and epochs going back, expiries — into history, and
// checks what status promises whatever the sequence: history never goes back in
// epochs, only the newest term is open, an expiry is told once (unless its holder
// renewed after all and stopped again), ends never
// come before starts, the limit holds, and the previous history is never changed.
// Its corpus (testdata/fuzz/FuzzHistory) runs in every `go test`.
func FuzzHistory(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1, 1, 0, 1})
	f.Add([]byte{1, 0, 0, 0, 5, 0, 0, 0, 5, 0, 0, 0, 3, 0, 0, 0, 1, 2, 0, 2})
	f.Add([]byte{1, 0, 4, 0, 4, 1, 0, 0, 1, 2, 0, 3, 2, 0, 0, 1, 1, 3, 0, 3})
	f.Fuzz(func(t *testing.T, steps []byte) {
		const limit = 5
		var (
			history  []v1alpha1.HistoryEntry
			lease    *coordinationv1.Lease
			told     = map[string]int{}
			reopened = map[string]int{}
			trace    []string
		)
		for i := 0; i+4 <= len(steps) && i < 400; i += 4 {
			op, who, jump, flags := steps[i], steps[i+1], steps[i+2], steps[i+3]
			now := t0.Add(time.Duration(i) * time.Second)
			obs := observation{now: now}
			lease = nextRecord(lease, op, who, jump, flags, now)
			obs.lease = lease
			if op%7 == 6 && leaserecord.Holder(lease) != "" {
				obs.expiredAt = ptr.To(now.Add(-time.Duration(flags%3) * time.Second))
			}
			trace = append(trace, describeObservation(obs))

			before := append([]v1alpha1.HistoryEntry(nil), history...)
			next, events := nextHistory(history, obs, limit)
			if !equalHistory(history, before) {
				t.Fatalf("nextHistory changed its input\n%v", trace)
			}
			checkHistory(t, next, limit, trace)
			if len(history) > 0 && len(next) > 0 && history[0].EndedAt != nil && next[0].EndedAt == nil &&
				history[0].Holder == next[0].Holder && history[0].Transition == next[0].Transition {
				reopened[expiryMessage(next[0])]++ // its holder renewed after all
			}
			for _, e := range events {
				if e.reason == EventLeaseExpired {
					if told[e.message]++; told[e.message] > 1+reopened[e.message] {
						t.Fatalf("expiry told twice for one end: %s\n%v", e.message, trace)
					}
				}
			}
			// Folding the same view again changes nothing.
			again, events := nextHistory(next, obs, limit)
			if !equalHistory(again, next) || len(events) > 0 {
				t.Fatalf("the same view folded twice changed history: %s -> %s (%d events)\n%v", describe(next), describe(again), len(events), trace)
			}
			history = next
		}
	})
}

func expiryMessage(e v1alpha1.HistoryEntry) string {
	return fmt.Sprintf("%s stopped renewing the lease (epoch %d)", e.Holder, e.Transition)
}

// nextRecord is the Lease after one step, as some writer would leave it.
func nextRecord(cur *coordinationv1.Lease, op, who, jump, flags byte, now time.Time) *coordinationv1.Lease {
	holder := string(rune('a' + who%4))
	epoch := leaserecord.Epoch(cur)
	w := leaserecord.Writer{Identity: holder, LeaseDuration: 4 * time.Second}
	switch op % 7 {
	case 0: // a renewal, when someone holds it
		if leaserecord.Holder(cur) != "" {
			w.Identity = leaserecord.Holder(cur)
			return leaserecord.Renew(cur, w, now)
		}
		return cur
	case 1: // an acquisition by one of our writers
		if cur == nil {
			return leaserecord.Create(types.NamespacedName{Namespace: "ns", Name: "lock"}, w, now, epoch+1+int32(jump%3))
		}
		return leaserecord.Acquire(cur, w, now, []leaserecord.How{leaserecord.AfterExpiry, leaserecord.AfterRelease, leaserecord.Handover}[flags%3], 0)
	case 2: // a release or a handover
		if cur == nil || leaserecord.Holder(cur) == "" {
			return cur
		}
		if flags%2 == 1 {
			return leaserecord.HandOver(cur, leaserecord.Holder(cur), holder, "", now, 2*time.Second)
		}
		return leaserecord.Release(cur, leaserecord.Holder(cur), now)
	case 3: // deleted
		return nil
	case 4: // a foreign writer: no annotations, any epoch, even a lower one
		l := &coordinationv1.Lease{}
		t := &metav1.MicroTime{Time: now}
		l.Spec = coordinationv1.LeaseSpec{HolderIdentity: ptr.To("x" + holder), AcquireTime: t, RenewTime: t,
			LeaseTransitions: ptr.To(max(0, epoch+int32(jump%5)-2))}
		return l
	case 5: // the Pods source moving the Lease in one write
		if cur == nil || leaserecord.Holder(cur) == "" {
			return cur
		}
		return leaserecord.Acquire(leaserecord.Release(cur, leaserecord.Holder(cur), now), w, now, leaserecord.AfterRelease, 0)
	}
	return cur // 6: the same record, seen expired
}

// checkHistory asserts the invariants of one history.
func checkHistory(t *testing.T, h []v1alpha1.HistoryEntry, limit int, trace []string) {
	t.Helper()
	if len(h) > limit {
		t.Fatalf("%d entries, limit %d\n%v", len(h), limit, trace)
	}
	for i, e := range h {
		if i > 0 && e.Transition >= h[i-1].Transition {
			t.Fatalf("history goes back in epochs: %s\n%v", describe(h), trace)
		}
		if i > 0 && e.EndedAt == nil {
			t.Fatalf("an older term is still open: %s\n%v", describe(h), trace)
		}
		if e.EndedAt != nil && e.EndedAt.Before(&e.AcquiredAt) {
			t.Fatalf("a term ends before it starts: %s\n%v", describe(h), trace)
		}
		if (e.EndedAt == nil) != (e.EndReason == "") {
			t.Fatalf("end time and reason disagree: %s\n%v", describe(h), trace)
		}
	}
}

func describeObservation(o observation) string {
	if o.lease == nil {
		return "deleted"
	}
	s := fmt.Sprintf("%q/%d %s", leaserecord.Holder(o.lease), leaserecord.Epoch(o.lease), leaserecord.Start(o.lease))
	if to := leaserecord.HandedOverTo(o.lease); to != "" {
		s += " for " + to
	}
	if o.expiredAt != nil {
		s += " expired"
	}
	return s
}
