package election

import (
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/election-manager/election-manager/internal/leaserecord"
	"github.com/election-manager/election-manager/internal/testutil"
)

// Shrinking the timings of a running group must not open an overlap, even when the
// renewal that first carries them is applied and its answer lost: followers count
// the new, short leaseDuration from when they see that record, so the leader must
// stop by the renewal's send time + the new renewDeadline, not by its last success +
// the old one.
func TestShrinkingTimingsWithALostRenewalResponse(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "lock"}
	rec, hist := newRecorder(t), watchLease(t, key)
	long := Config{LeaseDuration: 20 * time.Second, RenewDeadline: 15 * time.Second, RetryPeriod: 2 * time.Second}
	short := Config{LeaseDuration: 4 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 500 * time.Millisecond}
	shortSecs := int32(short.LeaseDuration / time.Second)

	a := startProcess(t, "a", rec, ns)
	ea := a.join(t, key, long)
	waitLeader(t, rec, key, 10*time.Second, "")
	b := startProcess(t, "b", rec, ns)
	eb := b.join(t, key, long)
	eventually(t, 10*time.Second, "b to see a leading", func() bool { return eb.Leader().Holder == "a" })

	// a's first renewal with the short leaseDuration goes out over its open
	// connection with the proxy already dropping answers: applied, never answered.
	var armed atomic.Bool
	armed.Store(true)
	loseAnswer := func(body []byte) {
		// Protobuf or JSON, whichever the client speaks.
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(body, nil, nil)
		l, ok := obj.(*coordinationv1.Lease)
		if err == nil && ok && l.Spec.LeaseDurationSeconds != nil &&
			*l.Spec.LeaseDurationSeconds == shortSecs && armed.CompareAndSwap(true, false) {
			a.proxy.SetMode(testutil.ResponseLost)
		}
	}
	a.requests.beforePut.Store(&loseAnswer)
	// The group's timings shrink as the controller passes a changed spec on: every
	// member through Registry.Ensure, the leader last.
	b.join(t, key, short)
	a.join(t, key, short)

	var lost *coordinationv1.Lease
	eventually(t, long.RetryPeriod+5*time.Second, "a's renewal with the short leaseDuration in the lease", func() bool {
		for _, v := range hist.all() {
			if leaserecord.Holder(v) == "a" && v.Spec.LeaseDurationSeconds != nil && *v.Spec.LeaseDurationSeconds == shortSecs {
				lost = v
				return true
			}
		}
		return false
	})
	if armed.Load() {
		t.Fatal("a's renewal with the short leaseDuration went out without the proxy dropping its answer")
	}
	sent := lost.Spec.RenewTime.Time // what a wrote: its send time, to the microsecond
	if info := ea.Leader(); info.Leading && info.LeadingUntil.After(sent.Add(short.RenewDeadline+time.Microsecond)) {
		t.Errorf("with the renewal in flight a leads until %s, after its send time + the new renewDeadline %s",
			info.LeadingUntil.Format(time.StampMicro), sent.Add(short.RenewDeadline).Format(time.StampMicro))
	}

	// Until a stops leading (callbacks) and b leads, watch both electors' own view.
	var both time.Time
	eventually(t, long.RenewDeadline+short.LeaseDuration+10*time.Second, "b to lead after a stopped", func() bool {
		al, bl := ea.IsLeader(), eb.IsLeader()
		if al && bl && both.IsZero() {
			both = time.Now()
		}
		return bl && !al && rec.leader(key.String()) == "b"
	})
	aTerm, bTerm := lastTerm(t, rec, key, "a"), lastTerm(t, rec, key, "b")
	if !ea.LastRenewal().Before(sent) {
		t.Errorf("a's last successful renewal was sent at %s, not before the lost one (%s): its answer was not lost",
			ea.LastRenewal().Format(time.StampMicro), sent.Format(time.StampMicro))
	}
	if !both.IsZero() {
		t.Errorf("a and b both said IsLeader at %s", both.Format(time.StampMicro))
	}
	requireTakeoverBounds(t, aTerm, bTerm, sent, short, 4*slack)
	acq := acquisition(t, hist, 2)
	if leaserecord.Holder(acq) != "b" || leaserecord.Epoch(acq) != aTerm.epoch+1 || acq.Annotations[leaserecord.AnnotationAcquiredHow] != string(leaserecord.AfterExpiry) {
		t.Errorf("takeover: holder %q epoch %d how %q, want b %d AfterExpiry",
			leaserecord.Holder(acq), leaserecord.Epoch(acq), acq.Annotations[leaserecord.AnnotationAcquiredHow], aTerm.epoch+1)
	}
	// The recorder checks at the end that a's and b's leading intervals do not overlap.
}
