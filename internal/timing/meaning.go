package timing

import (
	"strconv"
	"time"
)

// Fact is one thing an election's timings mean in practice.
type Fact struct {
	// What the fact is about, and Rule how it follows from the timings.
	What, Rule string
	Value      time.Duration
	// Ratio is set instead of Value for a rate (clock-rate tolerance).
	Ratio float64
}

// Meaning derives, from the rules the elector follows, what the timings mean for
// the people running an election:
//   - a leader renews every retryPeriod and stops leading at its last successful
//     renewal's send time + renewDeadline;
//   - the others take over at that renewal + leaseDuration on their own clocks, or
//     at once when the leader releases.
func (t Timings) Meaning() []Fact {
	ld, rd, rp := t.LeaseDuration, t.RenewDeadline, t.RetryPeriod
	return []Fact{
		{What: "longest time without a leader after it crashes", Rule: "leaseDuration (its last renewal + leaseDuration)", Value: ld},
		{What: "time without a leader after a graceful stop", Rule: "one API round trip (the lease is released); leaseDuration with releaseOnCancel false", Value: 0},
		{What: "a leader cut off from the API server stops leading", Rule: "renewDeadline after its last successful renewal", Value: rd},
		{What: "longest time without a leader after it is cut off", Rule: "leaseDuration (its last renewal + leaseDuration); nobody leads for the last leaseDuration − renewDeadline of it", Value: ld},
		{What: "API-server outage a leader always survives", Rule: "renewDeadline − retryPeriod (a retry must fit before the deadline)", Value: rd - rp},
		{What: "the same, while the manager spaces renewals out for a slow API server", Rule: "renewDeadline − max(retryPeriod, 3/4 × renewDeadline)", Value: rd - t.SlowestRenewal()},
		{What: "clock-rate difference tolerated between candidates", Rule: "leaseDuration / renewDeadline − 1 (the leader's renewDeadline must end before the others' leaseDuration)", Ratio: float64(ld)/float64(rd) - 1},
	}
}

// Format prints the fact's value as the README and kubectl leadergroup show it.
func (f Fact) Format() string {
	switch {
	case f.Ratio != 0:
		return strconv.Itoa(int(f.Ratio*100+0.5)) + "%"
	case f.Value == 0:
		return "milliseconds"
	}
	return f.Value.String()
}
