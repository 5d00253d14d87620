package bench

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/leaserecord"
	"github.com/election-manager/election-manager/internal/testutil"
)

// BenchmarkWriteCost measures what each kind of write the managers send costs
// kube-apiserver in CPU (from /proc), one write per op, from 40 writers at once:
// what a renewal, a takeover that lost the race, an Event and a status write
// weigh against each other, which decides how far a machine's CPU goes (see the
// README's Performance section). The writes go as a manager's do
// (candidateKubeconfig). It asserts nothing. Run it alone:
//
//	go test ./test/bench -run '^$' -bench WriteCost -benchtime 2000x
func BenchmarkWriteCost(b *testing.B) {
	ctx := context.Background()
	ns := "writecost-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = admin.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}) })
	apiserver, err := cp.Pid(testutil.APIServer)
	if err != nil {
		b.Fatal(err)
	}
	as, err := newCandidateClients()
	if err != nil {
		b.Fatal(err)
	}
	const writers = 40
	leases := make([]*coordinationv1.Lease, writers)
	groups := make([]*v1alpha1.LeaderGroup, writers)
	for i := range writers {
		name := fmt.Sprintf("g-%d", i)
		if leases[i], err = admin.CoordinationV1().Leases(ns).Create(ctx,
			leaserecord.Create(types.NamespacedName{Namespace: ns, Name: name}, writer("manager-0"), time.Now(), 1),
			metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		groups[i] = &v1alpha1.LeaderGroup{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
		groups[i].Spec.Candidates.Source = "Manager"
		groups[i].Spec.LeaseDuration.Duration, groups[i].Spec.RenewDeadline.Duration, groups[i].Spec.RetryPeriod.Duration = 15*time.Second, 10*time.Second, 2*time.Second
		if err := k8s.Create(ctx, groups[i]); err != nil {
			b.Fatal(err)
		}
	}

	// each runs op b.N times in all, spread over the writers (each its own object).
	each := func(b *testing.B, op func(i, n int) error) {
		var next atomic.Int32
		b.SetParallelism(max(1, writers/runtime.GOMAXPROCS(0))) // a goroutine per writer, at most
		before, err := cpuTime(apiserver)
		if err != nil {
			b.Fatal(err)
		}
		stopProfile := profileAPIServer(b)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := int(next.Add(1)-1) % writers
			for n := 0; pb.Next(); n++ {
				if err := op(i, n); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.StopTimer()
		stopProfile()
		after, err := cpuTime(apiserver)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64((after-before).Microseconds())/1000/float64(b.N), "apiserver-CPU-ms/op")
	}

	b.Run("lease-renewal", func(b *testing.B) {
		each(b, func(i, n int) error {
			l, err := as.leases.CoordinationV1().Leases(ns).Update(ctx,
				leaserecord.Renew(leases[i], writer("manager-0"), time.Now()), metav1.UpdateOptions{})
			if err == nil {
				leases[i] = l
			}
			return err
		})
	})
	// A takeover that lost the race: an Update on a version already gone. It is
	// refused only after admission and managed fields have run.
	b.Run("lease-takeover-conflict", func(b *testing.B) {
		each(b, func(i, n int) error {
			stale := leaserecord.Acquire(leases[i], writer("manager-1"), time.Now(), leaserecord.AfterExpiry, 1)
			stale.ResourceVersion = "1"
			_, err := as.leases.CoordinationV1().Leases(ns).Update(ctx, stale, metav1.UpdateOptions{})
			if err == nil {
				return fmt.Errorf("a stale takeover succeeded")
			}
			if apierrors.IsConflict(err) {
				return nil
			}
			return err
		})
	})
	var events atomic.Int64 // names, unique across the benchmark's runs
	b.Run("event", func(b *testing.B) {
		each(b, func(i, n int) error {
			_, err := as.leases.EventsV1().Events(ns).Create(ctx, &eventsv1.Event{
				ObjectMeta: metav1.ObjectMeta{Name: groups[i].Name + "." + strconv.FormatInt(events.Add(1), 10), Namespace: ns},
				EventTime:  metav1.NowMicro(), ReportingController: "election-manager", ReportingInstance: "manager-0",
				Action: "Observe", Reason: "LeaderElected", Note: "manager-1 leads (epoch " + strconv.Itoa(n) + ")", Type: corev1.EventTypeNormal,
				Regarding: corev1.ObjectReference{Kind: "LeaderGroup", APIVersion: v1alpha1.GroupVersion.String(), Namespace: ns, Name: groups[i].Name, UID: groups[i].UID},
			}, metav1.CreateOptions{})
			return err
		})
	})
	// A status write as the controller sends it (a merge patch guarded by the
	// resourceVersion) of a status at the default historyLimit: a new term at
	// the head of ten.
	b.Run("status-write", func(b *testing.B) {
		each(b, func(i, n int) error {
			g := groups[i]
			patch := client.MergeFromWithOptions(g.DeepCopy(), client.MergeFromWithOptimisticLock{})
			g.Status = newTermStatus(g.Status, n)
			return as.groups.Status().Patch(ctx, g, patch)
		})
	})
}

// profileAPIServer takes a 10-second CPU profile of kube-apiserver from the start of
// a sub-benchmark when BENCH_PROFILE names a folder, into writecost-<name>.pprof;
// stop waits for it. Only the writes use CPU, so a shorter run profiles as well.
func profileAPIServer(b *testing.B) (stop func()) {
	dir := os.Getenv("BENCH_PROFILE")
	if dir == "" {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		raw, err := admin.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").Param("seconds", "10").DoRaw(context.Background())
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "writecost-"+path.Base(b.Name())+".pprof"), raw, 0o644)
		}
		if err != nil {
			b.Logf("profiling kube-apiserver: %v", err)
		}
	}()
	return func() { <-done }
}

func writer(identity string) leaserecord.Writer {
	return leaserecord.Writer{Identity: identity, LeaseDuration: 15 * time.Second}
}

// newTermStatus is prev after term n began: its holder, the term at the head of a
// history of at most ten, and the conditions saying so.
func newTermStatus(prev v1alpha1.LeaderGroupStatus, n int) v1alpha1.LeaderGroupStatus {
	now := metav1.Now()
	holder := "manager-" + strconv.Itoa(n%3)
	s := v1alpha1.LeaderGroupStatus{ObservedGeneration: 1, Holder: holder, AcquiredAt: &now, Transitions: int32(n + 1),
		Candidates: []v1alpha1.CandidateStatus{{Identity: "manager-0", Ready: true}, {Identity: "manager-1", Ready: true}, {Identity: "manager-2", Ready: true}}}
	s.History = append([]v1alpha1.HistoryEntry{{Holder: holder, Transition: int32(n + 1), AcquiredAt: now, StartReason: "AfterRelease"}}, prev.History...)
	if len(s.History) > 1 {
		s.History[1].EndedAt, s.History[1].EndReason = &now, "Released"
		s.History[1].LeaderlessFor = &metav1.Duration{Duration: 12 * time.Millisecond}
	}
	s.History = s.History[:min(len(s.History), 10)]
	s.Conditions = []metav1.Condition{
		{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Serving", Message: "served as declared", LastTransitionTime: now, ObservedGeneration: 1},
		{Type: "LeaderElected", Status: metav1.ConditionTrue, Reason: "Elected", Message: holder + " leads", LastTransitionTime: now, ObservedGeneration: 1},
	}
	return s
}
