package v1alpha1_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/election-manager/election-manager/internal/timing"
)

// TestAdmissionAndTimingRulesAgree sends a grid of timings to the real API server
// and checks that the CRD's CEL rules (the reference) accept exactly what
// timing.Validate accepts: the elector, the flags and the controller check the same
// rules admission does.
func TestAdmissionAndTimingRulesAgree(t *testing.T) {
	durations := []time.Duration{500 * time.Millisecond, time.Second, 1500 * time.Millisecond, 2 * time.Second,
		2400 * time.Millisecond, 2401 * time.Millisecond, 3 * time.Second, 4 * time.Second, 5 * time.Second}
	n := 0
	for _, ld := range []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 5 * time.Second, 6 * time.Second, 6500 * time.Millisecond} {
		for _, rd := range durations {
			for _, rp := range durations {
				tm := timing.Timings{LeaseDuration: ld, RenewDeadline: rd, RetryPeriod: rp}
				n++
				obj := group(t, fmt.Sprintf("timing-%d", n), fmt.Sprintf("leaseDuration: %s\nrenewDeadline: %s\nretryPeriod: %s\n", ld, rd, rp))
				admitted := create(obj) == nil
				goErr := tm.Validate(timing.SpecNames)
				if admitted != (goErr == nil) {
					t.Errorf("%s/%s/%s: admitted %v, timing.Validate says %v", ld, rd, rp, admitted, goErr)
				}
			}
		}
	}
}
