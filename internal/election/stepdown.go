package election

import (
	"context"
	"time"
)

// stepDownRequest asks the loop to end leadership and not to campaign for backoff.
type stepDownRequest struct {
	backoff time.Duration
	reason  string
}

// StepDown makes this elector give up leadership now and stay a follower for
// backoff: it does not try to acquire the Lease until backoff has passed since it
// stepped down. When it leads, leadership ends as a lost term's does
// (OnStoppedLeading), and then the Lease is released, whatever ReleaseOnCancel
// says, so that another candidate takes over at once; like a graceful stop's, the
// release is sent only while the term is still valid and clears only a record
// that still names this identity and term. A renewal in flight is let finish
// first. StepDown only signals the elector's goroutine and returns at once; a
// later call replaces one not yet acted on. Stop it as usual.
func (e *Elector) StepDown(backoff time.Duration, reason string) {
	e.mu.Lock()
	e.stepDown = &stepDownRequest{backoff: backoff, reason: reason}
	e.mu.Unlock()
	e.signal()
}

func (e *Elector) takeStepDown() *stepDownRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.stepDown
	e.stepDown = nil
	return r
}

// stepDownNow ends leadership, then releases. The back-off starts when the loop
// next follows (followerStepDown).
func (l *loop) stepDownNow(ctx context.Context, r *stepDownRequest) {
	e := l.e
	leading, until := e.leadingState()
	stillValid := leading && !reached(e.clock.Now(), until)
	own := l.own
	// The leadership view ends before the release is sent.
	l.lose("Stepping down", "cause", r.reason, "backoff", r.backoff)
	if stillValid && own != nil {
		l.release(ctx, own, "")
	}
}

// followerStepDown starts the back-off of a step-down once this elector follows
// and has no write in flight (an acquisition in flight may still make it lead, and
// then step down).
func (l *loop) followerStepDown() {
	r := l.stepDown
	if r == nil {
		return
	}
	l.stepDown, l.campaignAt = nil, l.e.clock.Now().Add(r.backoff)
	l.logger.Info("Not campaigning until the step-down's back-off ends", "cause", r.reason, "until", l.campaignAt)
}
