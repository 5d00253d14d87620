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

// take waits for a slot for a write of kind, and returns what gives it back and
// whether it had to wait: every slot busy means the server is not keeping up with
// the process's writes. An error when ctx ends first. A nil writeSlots has room for
// every write.
func (s *writeSlots) take(ctx context.Context, kind writeKind) (release func(), waited bool, err error) {
	if s == nil {
		return func() {}, false, nil
	}
	var acquiring chan struct{}
	if kind != writeRenew {
		acquiring = s.acquisitions
		w, err := put(ctx, acquiring)
		if err != nil {
			return nil, true, err
		}
		waited = w
	}
	w, err := put(ctx, s.all)
	if err != nil {
		if acquiring != nil {
			<-acquiring
		}
		return nil, true, err
	}
	return func() {
		<-s.all
		if acquiring != nil {
			<-acquiring
		}
	}, waited || w, nil
}

// put takes a place in c, and tells whether it had to wait for one.
func put(ctx context.Context, c chan struct{}) (waited bool, err error) {
	select {
	case c <- struct{}{}:
		return false, nil
	default:
	}
	select {
	case c <- struct{}{}:
		return true, nil
	case <-ctx.Done():
		return true, ctx.Err()
	}
}
