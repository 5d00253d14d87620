package election

import "context"

// writeSlots bound the Lease writes in flight from a Registry's electors, which
// share one connection (see Options.MaxConcurrentWrites), and keep some of them
// for renewals. When leases expire in numbers (a process gone, a server that was
// overloaded), every follower tries to acquire at once; those writes must not
// crowd out the renewals that keep the other groups led, or the overload spreads.
// Acquisitions may hold three quarters of the slots; renewals any of them.
type writeSlots struct {
	all, acquisitions chan struct{}
}

func newWriteSlots(n int) *writeSlots {
	return &writeSlots{all: make(chan struct{}, n), acquisitions: make(chan struct{}, max(1, n*3/4))}
}

// take waits for a slot for a write of kind, and returns what gives it back; an
// error when ctx ends first. A nil writeSlots has room for every write.
func (s *writeSlots) take(ctx context.Context, kind writeKind) (release func(), err error) {
	if s == nil {
		return func() {}, nil
	}
	var acquiring chan struct{}
	if kind != writeRenew {
		acquiring = s.acquisitions
		if err := put(ctx, acquiring); err != nil {
			return nil, err
		}
	}
	if err := put(ctx, s.all); err != nil {
		if acquiring != nil {
			<-acquiring
		}
		return nil, err
	}
	return func() {
		<-s.all
		if acquiring != nil {
			<-acquiring
		}
	}, nil
}

func put(ctx context.Context, c chan struct{}) error {
	select {
	case c <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
