package election

import (
	"context"
	"testing"
	"time"
)

// Acquisitions hold at most three quarters of the write slots: when followers
// rush to acquire, renewals still find a slot at once.
func TestAcquisitionsLeaveTheWriteSlotsToRenewals(t *testing.T) {
	s := newWriteSlots(16) // 12 for acquisitions
	ctx := context.Background()
	for range 12 {
		if _, _, err := s.take(ctx, writeAcquire); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, _, err := s.take(short, writeCreate); err == nil {
		t.Fatal("a 13th acquisition got a slot; want it to wait")
	}
	var releases []func()
	for i := range 4 {
		release, waited, err := s.take(ctx, writeRenew)
		if err != nil || waited {
			t.Fatalf("renewal %d found no slot at once while acquisitions waited: waited %v, %v", i, waited, err)
		}
		releases = append(releases, release)
	}
	short2, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	// A write that finds every slot busy waits, and says so: the pacer counts it
	// as slow.
	if _, waited, err := s.take(short2, writeRenew); err == nil || !waited {
		t.Fatalf("a 17th write: waited %v, %v; want it to wait in vain", waited, err)
	}
	releases[0]()
	if _, waited, err := s.take(ctx, writeRenew); err != nil || waited {
		t.Fatalf("a slot given back was not taken at once: waited %v, %v", waited, err)
	}
}
