package faults

import (
	"context"
	"sync"
	"time"
)

// Run injects the planned faults: each step waits, when it says so, for the faults
// before it to end and every group to have a leader; claims its target (or is
// skipped after a while if none is free); injects; heals after its duration in the
// background; and the next step starts after its gap, so that faults overlap.
// It returns when every fault has been healed, with the number of steps skipped.
func (s *System) Run(ctx context.Context, steps []Step, settle time.Duration) (skipped int) {
	var wg sync.WaitGroup
	for i, st := range steps {
		if ctx.Err() != nil {
			break
		}
		if st.Settle {
			wg.Wait()
			if err := s.Settle(ctx, settle); err != nil {
				s.logf("step %d: not settled: %v", i, err) // the checker measures it
			}
		}
		f := newFault(st)
		var target string
		claimed := false
		deadline := time.Now().Add(claimFor)
		for !claimed && time.Now().Before(deadline) && ctx.Err() == nil {
			if target, claimed = f.claim(ctx, s); !claimed {
				sleep(ctx, 100*time.Millisecond)
			}
		}
		if !claimed {
			s.logf("step %d: %s skipped: no free target for %s", i, st.Kind, claimFor)
			skipped++
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			if err := f.inject(ctx, s); err != nil {
				s.problem("suite", st.Kind+" "+target+": inject: "+err.Error())
			}
			sleep(ctx, time.Until(start.Add(st.Duration)))
			if err := f.heal(ctx, s); err != nil {
				s.problem("suite", st.Kind+" "+target+": heal: "+err.Error())
			}
			end := time.Now()
			s.recordFault(Fault{Kind: st.Kind, Target: target, Start: start, End: end, ControlPlane: isControlPlane(st.Kind)})
			s.logf("step %d: %s %s for %s", i, st.Kind, target, end.Sub(start).Round(time.Millisecond))
		}()
		sleep(ctx, st.Gap)
	}
	wg.Wait()
	return skipped
}

// claimFor is how long a step waits for a free target before it is skipped.
const claimFor = 10 * time.Second

func isControlPlane(kind string) bool {
	switch kind {
	case "apiserver-kill", "apiserver-stop", "etcd-kill", "etcd-stop":
		return true
	}
	return false
}
