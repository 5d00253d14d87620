package election

import (
	"sync"
	"time"
)

// renewalBook spreads the renewals of the electors that share it (a Registry's)
// evenly over time. Renewals are paced by their send times, so electors that
// renewed together once (terms begun in one burst: a process starting, a stopped
// one's groups taken over) renew together for ever after, and the server gets
// waves it cannot answer in time although it could take the same writes spread
// out: at 1,000 groups the renewals sent per second alternated ~350 and ~700, and
// leaderships were lost in the peaks with kube-apiserver at 80 % CPU on average.
//
// So each renewal is booked in a spreadBucket: the latest one, from its due time
// back through a spreadShare of its interval, that is no busier than that span's
// average. Renewing early is always safe; once the renewals are even, one moves a
// bucket or two at most, so the write rate stays what the interval says.
type renewalBook struct {
	mu sync.Mutex
	// base is the first time booked from; buckets count from it, on the monotonic
	// clock where the times carry it, so a step of the wall clock moves nothing.
	base   time.Time
	booked map[int64]int // bucket -> renewals booked in it
	swept  int64         // the bucket of the last sweep of past ones
}

const (
	spreadBucket = 20 * time.Millisecond
	// spreadShare is the part of its interval a renewal may move earlier by.
	spreadShare = 4
	// sweepEvery buckets the past bookings are dropped.
	sweepEvery = 50
)

// book returns when a renewal due at due, one interval after the last, is sent:
// due or a few buckets earlier, never before now.
func (b *renewalBook) book(now, due time.Time, interval time.Duration) time.Time {
	n := int(min(interval/spreadShare, due.Sub(now)) / spreadBucket)
	if n < 2 {
		return due
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.booked == nil {
		b.base, b.booked = now, map[int64]int{}
	}
	last := int64(due.Sub(b.base) / spreadBucket)
	b.sweep(int64(now.Sub(b.base) / spreadBucket))
	total := 0
	for k := range n {
		total += b.booked[last-int64(k)]
	}
	for k := range n {
		if b.booked[last-int64(k)]*n <= total { // at most the average: one always is
			b.booked[last-int64(k)]++
			return due.Add(-time.Duration(k) * spreadBucket)
		}
	}
	return due
}

// sweep drops the bookings of buckets before now, every sweepEvery buckets.
func (b *renewalBook) sweep(now int64) {
	if now-b.swept < sweepEvery {
		return
	}
	for k := range b.booked {
		if k < now {
			delete(b.booked, k)
		}
	}
	b.swept = now
}
