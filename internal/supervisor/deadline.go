package supervisor

import (
	"fmt"
	"time"
)

// Timing rule. A leader's child must be dead before anyone else can take the Lease
// over, which is no earlier than lastRenewal + leaseDuration (lastRenewal: the send
// time of the leader's last successful renewal; a follower counts leaseDuration from
// when it saw that renewal, which is later). The elector ends leadership no later than
// lastRenewal + renewDeadline. So:
//
//	SIGTERM  when leadership ends (at the latest lastRenewal + renewDeadline), or on a stop
//	SIGKILL  at min(SIGTERM + gracePeriod, lastRenewal + leaseDuration - safetyMargin)
//	safetyMargin = 500ms + leaseDuration/100   (clock-rate drift between the two
//	               machines' clocks, 1% of leaseDuration, plus the time a kill takes)
//	gracePeriod <= leaseDuration - renewDeadline - safetyMargin, which must be > 0
//
// Both are absolute times on the monotonic clock, computed from lastRenewal, so a
// late callback shortens the grace period instead of overrunning the bound.

// KillLatency is the part of the default safety margin for delivering SIGKILL: the
// guardian finding the child's process tree and the kernel tearing it down, and
// this process being scheduled.
const KillLatency = 500 * time.Millisecond

// DriftAllowance is the part of the default safety margin for clock-rate drift, as a
// fraction of leaseDuration: this machine's timer and the next leader's may run at
// different rates. NTP keeps real clocks within 0.05%; 1% leaves room for worse.
const DriftAllowance = 0.01

// DefaultSafetyMargin is the safety margin for leaseDuration: KillLatency plus
// DriftAllowance × leaseDuration.
func DefaultSafetyMargin(leaseDuration time.Duration) time.Duration {
	return KillLatency + time.Duration(DriftAllowance*float64(leaseDuration))
}

// Budget is what a child gets to stop in one election's timings.
type Budget struct {
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	// SafetyMargin is subtracted from the takeover time; 0 means DefaultSafetyMargin.
	SafetyMargin time.Duration
	// GracePeriod is the longest wait from SIGTERM to SIGKILL; 0 means MaxGrace.
	GracePeriod time.Duration
}

// Margin is the safety margin in effect.
func (b Budget) Margin() time.Duration {
	if b.SafetyMargin > 0 {
		return b.SafetyMargin
	}
	return DefaultSafetyMargin(b.LeaseDuration)
}

// MaxGrace is the longest grace period the timings allow: leaseDuration -
// renewDeadline - safety margin. It is not positive when they leave no room.
func (b Budget) MaxGrace() time.Duration {
	return b.LeaseDuration - b.RenewDeadline - b.Margin()
}

// Grace is the grace period in effect.
func (b Budget) Grace() time.Duration {
	if b.GracePeriod > 0 {
		return b.GracePeriod
	}
	return b.MaxGrace()
}

// Horizon is how long after the last renewal the child must be dead:
// leaseDuration - safety margin.
func (b Budget) Horizon() time.Duration {
	return b.LeaseDuration - b.Margin()
}

// Names are how an error message refers to the timings, e.g. "--lease-duration" or
// "spec.leaseDuration".
type Names struct {
	LeaseDuration, RenewDeadline, SafetyMargin, GracePeriod string
}

// Validate refuses a budget that leaves the child no time to stop, naming the
// settings that would have to change.
func (b Budget) Validate(n Names) error {
	if b.SafetyMargin < 0 {
		return fmt.Errorf("%s %s: must not be negative", n.SafetyMargin, b.SafetyMargin)
	}
	if b.GracePeriod < 0 {
		return fmt.Errorf("%s %s: must not be negative", n.GracePeriod, b.GracePeriod)
	}
	if room := b.MaxGrace(); room <= 0 {
		return fmt.Errorf("%s (%s) - %s (%s) - safety margin (%s, %s) = %s leaves the child no time to stop: "+
			"it gets SIGTERM when leadership ends, as late as the last renewal + renew deadline, and must be dead "+
			"by the last renewal + lease duration - safety margin; raise %s or lower %s",
			n.LeaseDuration, b.LeaseDuration, n.RenewDeadline, b.RenewDeadline, b.Margin(), n.SafetyMargin, room,
			n.LeaseDuration, n.RenewDeadline)
	}
	if b.GracePeriod > b.MaxGrace() {
		return fmt.Errorf("%s %s: must be at most %s (%s) - %s (%s) - safety margin (%s) = %s",
			n.GracePeriod, b.GracePeriod, n.LeaseDuration, b.LeaseDuration, n.RenewDeadline, b.RenewDeadline,
			b.Margin(), b.MaxGrace())
	}
	return nil
}

// KillDeadline is when a child sent SIGTERM at termAt must get SIGKILL:
// min(termAt + grace, lastRenewal + horizon); a zero lastRenewal (never led, or
// not known) bounds nothing.
func KillDeadline(termAt, lastRenewal time.Time, grace, horizon time.Duration) time.Time {
	at := termAt.Add(grace)
	if !lastRenewal.IsZero() {
		if byLease := lastRenewal.Add(horizon); byLease.Before(at) {
			return byLease
		}
	}
	return at
}
