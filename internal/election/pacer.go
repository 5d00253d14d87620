package election

import (
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// pacer spaces out the renewals of the electors that share it (a Registry's) by
// what the API server sustains. Renewing every retryPeriod whatever the server can
// take makes an overloaded server miss every leader's deadline at once, and all
// elections flap together. So while renewals come back slowly or are throttled,
// the interval grows from retryPeriod toward timing's SlowestRenewal
// (3/4 of renewDeadline), fast; once they come back quickly it returns, slowly.
//
// It also spreads the renewals evenly over time (renewalBook).
//
// Safety does not depend on it: leadership still ends at the last successful
// renewal's send time + renewDeadline, however the renewals are spaced.
type pacer struct {
	clock  clock.PassiveClock
	logger klog.Logger
	book   renewalBook

	mu sync.Mutex
	// stretch places the interval between retryPeriod (0) and SlowestRenewal
	// (fullStretch), in steps.
	stretch int
	// The current window's renewals, and how many of them were slow or busy.
	windowStart time.Time
	renewals    int
	slow, busy  int
	// busyRun counts the windows in a row that were busy but not slow.
	busyRun     int
	lastRenewal time.Time
}

const (
	// paceWindow is how often the stretch is adjusted, from the renewals seen.
	paceWindow = time.Second
	// A renewal is slow when it took longer than this share of its renewDeadline
	// (its send time includes any wait for a write slot in the process), or a
	// quarter of that when it had to wait for a slot: a short wait is a busy
	// process in front of a healthy server, a long one a server that does not keep
	// up.
	slowShare       = 0.1
	queuedSlowShare = slowShare / 4
	// A renewal is busy when it took longer than this share: not slow yet, but
	// perhaps the server's queue growing. While slowWindowShare of a window's
	// renewals are busy, the interval shrinks only one step in busyWindows: coming
	// back a step a second until renewals turned slow overshot what the server
	// takes, and the renewals sent in the overshoot missed their deadlines before
	// the stretch could grow again (at 1,000 groups, 63 terms lost at once in a
	// 5-minute run whose writes were otherwise even). It still comes back, for a
	// server that is merely far away answers every renewal busy.
	busyShare   = slowShare / 3
	busyWindows = 10
	// strainMemory: a stretch not confirmed by any renewal for this long says
	// nothing about the server now (the process may lead nothing any more).
	strainMemory = 30 * time.Second
	// Past slowWindowShare of slow renewals in a window the stretch grows by
	// paceUp; below calmWindowShare it shrinks by paceDown (in between it holds):
	// from none to full in 4 windows, from full back to retryPeriod in 20. A rare
	// slow renewal (a GC pause) must not hold a busy process stretched forever;
	// but coming back fast overshoots: at 3,000 groups the load grew faster than
	// overload showed, and renewals went back to every retryPeriod into a server
	// that could not take them.
	slowWindowShare = 0.1
	calmWindowShare = 0.02
	fullStretch     = 20
	paceUp          = 5
	paceDown        = 1
)

func newPacer(clk clock.PassiveClock, logger klog.Logger) *pacer {
	return &pacer{clock: clk, logger: logger, windowStart: clk.Now()}
}

// interval is how long after a successful renewal's send time the next is sent.
func (p *pacer) interval(cfg *Config) time.Duration {
	if p == nil {
		return cfg.RetryPeriod
	}
	p.mu.Lock()
	stretch := p.stretch
	p.mu.Unlock()
	rp := cfg.RetryPeriod
	return rp + (cfg.Timings().SlowestRenewal()-rp)*time.Duration(stretch)/fullStretch
}

// renewAt is when the renewal after one sent at sent goes out: a share of the
// interval later (1 but for a term's first renewal), or a little earlier where
// fewer renewals are booked.
func (p *pacer) renewAt(cfg *Config, now, sent time.Time, share float64) time.Time {
	interval := p.interval(cfg)
	due := sent.Add(time.Duration(share * float64(interval)))
	if p == nil {
		return due
	}
	return p.book.book(now, due, interval)
}

// strained tells whether renewals are being spaced out: the API server answers
// slowly, and other writes of the process should yield to renewals.
func (p *pacer) strained() bool {
	if p == nil {
		return false
	}
	now := p.clock.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stretch > 0 && now.Sub(p.lastRenewal) < strainMemory
}

// observe counts a renewal that took latency from its send time, waited for a
// write slot (queued) or not, and ended with err. A throttled (429) or timed-out
// renewal is slow, and so is one that found every write slot busy: the server is
// not keeping up with the process's writes, the earliest sign of overload, long
// before latency alone shows it. A conflict or a missing Lease says nothing about
// the server's load.
func (p *pacer) observe(cfg *Config, latency time.Duration, queued bool, err error) {
	if p == nil || apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return
	}
	slow := err != nil || latency > time.Duration(slowShare*float64(cfg.RenewDeadline)) ||
		(queued && latency > time.Duration(queuedSlowShare*float64(cfg.RenewDeadline)))
	busy := latency > time.Duration(busyShare*float64(cfg.RenewDeadline))
	now := p.clock.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastRenewal = now
	p.renewals++
	if slow {
		p.slow++
	}
	if busy {
		p.busy++
	}
	if now.Sub(p.windowStart) >= paceWindow {
		p.endWindow(now)
	}
}

// endWindow adjusts the stretch to the window's renewals and starts the next;
// p.mu is held.
func (p *pacer) endWindow(now time.Time) {
	before := p.stretch
	n := float64(p.renewals)
	calm, busy := float64(p.slow) < calmWindowShare*n, float64(p.busy) >= slowWindowShare*n
	if calm && busy {
		p.busyRun++
	} else {
		p.busyRun = 0
	}
	switch {
	case float64(p.slow) >= slowWindowShare*n:
		p.stretch = min(fullStretch, p.stretch+paceUp)
	case calm && (!busy || p.busyRun%busyWindows == 0):
		p.stretch = max(0, p.stretch-paceDown)
	}
	switch {
	case before == 0 && p.stretch > 0:
		p.logger.Info("Spacing out renewals: the API server answers slowly", "slowRenewals", p.slow, "renewals", p.renewals)
	case before > 0 && p.stretch == 0:
		p.logger.Info("Renewing every retryPeriod again")
	}
	p.windowStart, p.renewals, p.slow, p.busy = now, 0, 0, 0
}
