// Package timing holds the one set of rules an election's timings must follow. The
// LeaderGroup CRD's CEL rules are the reference (a test checks that the API server
// and Validate agree); the elector, the manager's and the elector command's flags,
// and the controller all check through Validate.
package timing

import (
	"errors"
	"fmt"
	"time"
)

// JitterFactor is client-go's factor: renewDeadline must exceed retryPeriod by it,
// so that at least one retry fits into the deadline even with a jittered period.
const JitterFactor = 1.2

// Timings are an election's durations.
type Timings struct {
	// LeaseDuration: how long candidates wait, from when they last saw the record
	// change, before they may take it over. Stored in the Lease as whole seconds.
	LeaseDuration time.Duration
	// RenewDeadline: how long the leader keeps leading after sending its last
	// successful renewal.
	RenewDeadline time.Duration
	// RetryPeriod: how often the leader renews.
	RetryPeriod time.Duration
}

// Names are how errors refer to the three durations, so that a refusal names the
// field or flag the user wrote.
type Names struct {
	LeaseDuration, RenewDeadline, RetryPeriod string
}

// Names for a LeaderGroup's spec and for an elector's config.
var (
	SpecNames   = Names{"spec.leaseDuration", "spec.renewDeadline", "spec.retryPeriod"}
	ConfigNames = Names{"leaseDuration", "renewDeadline", "retryPeriod"}
)

// Validate checks the rules, naming each field that breaks one:
//   - all greater than zero;
//   - leaseDuration whole seconds and at least 1s (a Lease stores integer seconds:
//     500ms would be read back as 0, an always-expired lease);
//   - leaseDuration > renewDeadline + retryPeriod: a leader acts until its last
//     renewal + renewDeadline (+ up to a retry period before it notices), others may
//     take over at last renewal + leaseDuration;
//   - renewDeadline > 1.2 × retryPeriod (client-go's rule), compared in whole
//     milliseconds as the CRD's CEL rule does.
func (t Timings) Validate(n Names) error {
	var errs []error
	ld, rd, rp := t.LeaseDuration, t.RenewDeadline, t.RetryPeriod
	switch {
	case ld < time.Second:
		errs = append(errs, fmt.Errorf("%s %s: must be at least 1s", n.LeaseDuration, ld))
	case ld%time.Second != 0:
		errs = append(errs, fmt.Errorf("%s %s: must be whole seconds (a Lease stores whole seconds)", n.LeaseDuration, ld))
	case rd > 0 && rp > 0 && ld <= rd+rp:
		errs = append(errs, fmt.Errorf("%s %s: must be greater than %s + %s (%s)", n.LeaseDuration, ld, n.RenewDeadline, n.RetryPeriod, rd+rp))
	}
	if rd <= 0 {
		errs = append(errs, fmt.Errorf("%s %s: must be greater than 0", n.RenewDeadline, rd))
	}
	if rp <= 0 {
		errs = append(errs, fmt.Errorf("%s %s: must be greater than 0", n.RetryPeriod, rp))
	}
	if rd > 0 && rp > 0 && rd.Milliseconds()*10 <= rp.Milliseconds()*12 {
		errs = append(errs, fmt.Errorf("%s %s: must be greater than %.1f × %s (%s)", n.RenewDeadline, rd, JitterFactor, n.RetryPeriod, rp*12/10))
	}
	return errors.Join(errs...)
}

// handoverRetries is how many retry periods a handover waits for its target.
const handoverRetries = 3

// HandoverReservation is how long a Lease released for a preferred identity stays
// reserved for it: a few retry periods (whole seconds, as a Lease stores them), never
// more than leaseDuration. A target that does not take it by then is not coming;
// the other candidates then elect as usual.
func (t Timings) HandoverReservation() time.Duration {
	d := (handoverRetries*t.RetryPeriod + time.Second - 1).Truncate(time.Second)
	return max(time.Second, min(d, t.LeaseDuration))
}

// SuccessorHeadStart is how long the other candidates give a free Lease's chosen
// successor to take it before they try too: a tenth of retryPeriod, usually long
// enough for its write to land and reach them (a slower one means a race, as
// without a successor), short enough that a successor that does not come delays
// nobody much.
func (t Timings) SuccessorHeadStart() time.Duration {
	return t.RetryPeriod / 10
}

// SlowestRenewal is the longest interval between a leader's renewals: renewals
// come every retryPeriod, and are spaced out up to 3/4 of renewDeadline while the
// API server answers slowly or throttles (see election's pacer). A saturated
// server serves everyone late; spacing renewals out is what brings its latency
// back down, and the last quarter of the deadline is left for the renewal (and a
// quick retry of a failed one) to get through.
func (t Timings) SlowestRenewal() time.Duration {
	return max(t.RetryPeriod, t.RenewDeadline*3/4)
}
