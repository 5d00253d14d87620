package election

import (
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/election-manager/election-manager/internal/leaserecord"
	"github.com/election-manager/election-manager/internal/testutil"
)

// LastRenewal stays readable after leadership ends, from OnStoppedLeading, and is
// the term's last successful write: what a supervisor counts its kill deadline from.
func TestLastRenewalOutlivesTheTerm(t *testing.T) {
	ns := newNamespace(t)
	key := types.NamespacedName{Namespace: ns, Name: "lock"}
	p := startProcess(t, "a", newRecorder(t), ns)
	hist := watchLease(t, key)
	var self atomic.Pointer[Elector]
	atStop := make(chan time.Time, 1)
	cfg := fast
	cfg.Lease, cfg.Identity = key, "a"
	e, err := p.reg.Ensure(key.String(), cfg, Callbacks{OnStoppedLeading: func() { atStop <- self.Load().LastRenewal() }})
	if err != nil {
		t.Fatal(err)
	}
	self.Store(e)
	eventually(t, 10*time.Second, "leading", e.IsLeader)
	if info := e.Leader(); !info.LastRenewal.Equal(e.LastRenewal()) || info.LastRenewal.IsZero() {
		t.Fatalf("while leading: Leader().LastRenewal %s, LastRenewal() %s", info.LastRenewal, e.LastRenewal())
	}
	last := e.LastRenewal()
	p.proxy.SetMode(testutil.Blackhole)
	select {
	case got := <-atStop:
		if got.Before(last) || got.IsZero() {
			t.Errorf("LastRenewal in OnStoppedLeading %s, before the one seen while leading %s", got, last)
		}
		if info := e.Leader(); info.Leading || !info.LastRenewal.IsZero() {
			t.Errorf("after the loss Leader() says %+v", info)
		}
		if !e.LastRenewal().Equal(got) {
			t.Errorf("LastRenewal changed after the loss: %s, then %s", got, e.LastRenewal())
		}
		// The send time of the last successful write is the renewTime it wrote (a
		// blackholed write never reaches the server).
		written := hist.lastRenewal("a", leaserecord.Epoch(hist.last()))
		if !got.Truncate(time.Microsecond).Equal(written) {
			t.Errorf("LastRenewal %s, but the last renewal written says %s", got, written)
		}
	case <-time.After(cfg.RenewDeadline + 5*time.Second):
		t.Fatal("leadership did not end")
	}
}
