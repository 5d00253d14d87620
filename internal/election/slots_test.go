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
		if _, err := s.take(ctx, writeAcquire); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := s.take(short, writeCreate); err == nil {
		t.Fatal("a 13th acquisition got a slot; want it to wait")
	}
	var releases []func()
	for i := range 4 {
		release, err := s.take(ctx, writeRenew)
		if err != nil {
			t.Fatalf("renewal %d found no slot while acquisitions waited: %v", i, err)
		}
		releases = append(releases, release)
	}
	short2, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	if _, err := s.take(short2, writeRenew); err == nil {
		t.Fatal("a 17th write got a slot")
	}
	releases[0]()
	if _, err := s.take(ctx, writeRenew); err != nil {
		t.Fatalf("a slot given back was not taken: %v", err)
	}
}
