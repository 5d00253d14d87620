package election

import (
	"math/rand/v2"
	"testing"
	"time"

	"k8s.io/klog/v2"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestAWaveOfRenewalsIsSpreadOverAQuarterOfTheirInterval(t *testing.T) {
	var b renewalBook
	const n, interval = 300, 2 * time.Second
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	due := now.Add(interval)
	perBucket := map[int64]int{}
	for range n {
		at := b.book(now, due, interval)
		if at.After(due) || at.Before(due.Add(-interval/spreadShare)) {
			t.Fatalf("a renewal due at %s was booked at %s, want within a quarter interval before", due, at)
		}
		perBucket[at.UnixNano()/int64(spreadBucket)]++
	}
	buckets := int(interval / spreadShare / spreadBucket)
	for k, c := range perBucket {
		if c > n/buckets+1 {
			t.Errorf("bucket %d holds %d renewals, want at most %d (%d over %d buckets)", k, c, n/buckets+1, n, buckets)
		}
	}
}

// Electors that renewed together once, each then renewing an interval after its
// last send as the loop does: the wave flattens within a few intervals, and once
// flat a renewal hardly moves, so the write rate stays what the interval says.
func TestRenewalsInLockstepSpreadOutAndKeepTheirRate(t *testing.T) {
	var b renewalBook
	const n, rounds, interval = 300, 30, 2 * time.Second
	start := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	next := make([]time.Time, n)
	for i := range next {
		next[i] = start.Add(time.Duration(i%5) * time.Millisecond) // one bucket
	}
	end := start.Add(rounds * interval)
	sends := map[int64]int{} // per bucket, in the last five intervals
	var total time.Duration
	count := 0
	for {
		i := 0
		for j := range next {
			if next[j].Before(next[i]) {
				i = j
			}
		}
		now := next[i]
		if !now.Before(end) {
			break
		}
		if now.After(end.Add(-5 * interval)) {
			sends[now.UnixNano()/int64(spreadBucket)]++
		}
		next[i] = b.book(now, now.Add(interval), interval)
		total += next[i].Sub(now)
		count++
	}
	even := float64(n) / float64(interval/spreadBucket)
	most := 0
	for _, c := range sends {
		most = max(most, c)
	}
	t.Logf("at most %d renewals sent in a bucket (even: %.1f); every %s on average", most, even, total/time.Duration(count))
	if float64(most) > 2*even {
		t.Errorf("%d renewals sent in one bucket, want at most twice the even %.1f", most, even)
	}
	if mean := total / time.Duration(count); mean < interval*95/100 {
		t.Errorf("renewals came every %s on average, want at least 95 %% of the %s interval", mean, interval)
	}
}

func TestALoneRenewalIsSentWhenDue(t *testing.T) {
	var b renewalBook
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	for range 10 {
		due := now.Add(time.Second)
		if at := b.book(now, due, time.Second); !at.Equal(due) {
			t.Fatalf("a lone renewal due at %s was booked at %s", due, at)
		}
		now = due
	}
	// Due within two buckets (a late send): nothing to spread over.
	if due := now.Add(spreadBucket); !b.book(now, due, time.Second).Equal(due) {
		t.Error("a renewal due within two buckets was moved")
	}
}

// As the loop asks for it: whatever the latency of the renewal just done and the
// share of the interval (a term's first renewal), the next goes at its due time or
// earlier, and never within a bucket of now when there was room to spread it.
func TestARenewalIsNeverBookedLaterThanDueNorInThePast(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))
	p := newPacer(clk, klog.Background())
	cfg := &Config{LeaseDuration: 6 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: time.Second}
	for range 5000 {
		clk.Step(time.Duration(rand.IntN(5)) * time.Millisecond)
		now := clk.Now()
		interval := p.interval(cfg)
		sent := now.Add(-time.Duration(rand.Int64N(int64(interval) * 5 / 4)))
		share := 1.0
		if rand.IntN(2) == 0 {
			share = 0.5 + rand.Float64()/2
		}
		due := sent.Add(time.Duration(share * float64(interval)))
		at := p.renewAt(cfg, now, sent, share)
		switch {
		case at.After(due):
			t.Fatalf("due at %s, booked later at %s", due, at)
		case due.Sub(now) >= 2*spreadBucket && at.Before(now.Add(spreadBucket)):
			t.Fatalf("due at %s (now %s), booked at %s, within a bucket of now", due, now, at)
		case due.Sub(now) < 2*spreadBucket && !at.Equal(due):
			t.Fatalf("due at %s, within two buckets of now %s, moved to %s", due, now, at)
		}
	}
}
