package election

import (
	"context"
	"time"
)

// stepDownRequest asks the loop to end leadership and not to campaign for backoff.
type stepDownRequest struct {
	epoch   int32 // the term to end; 0: the current one
	backoff time.Duration
	reason  string
}

// StepDown makes this elector give up the term epoch (0: whichever it leads) now
// and stay a follower for backoff: it does not try to acquire the Lease until
// backoff has passed since it stepped down. When it leads that term, leadership
// ends as a lost term's does (OnStoppedLeading), and then the Lease is released,
// whatever ReleaseOnCancel says, so that another candidate takes over at once:
// as with Stop, stop what the leadership guards before asking. Like a graceful
// stop's, the release is sent only while the term is still valid and clears only
// a record that still names this identity and term. A renewal in flight is let
// finish first. When it leads another term, the request is dropped (that term is
// not the one asked about); when it follows, only the back-off applies (an
// acquisition already in flight may still win). StepDown only signals the
// elector's goroutine and returns at once; a later call replaces one not yet
// acted on.
func (e *Elector) StepDown(epoch int32, backoff time.Duration, reason string) {
	e.mu.Lock()
	e.stepDown = &stepDownRequest{epoch: epoch, backoff: backoff, reason: reason}
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

// otherTermStepDown drops a step-down asked for a term other than the one this
// elector leads.
func (l *loop) otherTermStepDown() {
	if r := l.stepDown; r != nil && r.epoch != 0 && r.epoch != l.epoch {
		l.logger.Info("Not stepping down: asked for another term", "askedEpoch", r.epoch, "epoch", l.epoch, "cause", r.reason)
		l.stepDown = nil
	}
}

// followerStepDown starts the back-off of a step-down once this elector follows.
// An acquisition in flight may still win; that term is not stepped down from.
func (l *loop) followerStepDown() {
	r := l.stepDown
	if r == nil {
		return
	}
	l.stepDown, l.campaignAt = nil, l.e.clock.Now().Add(r.backoff)
	l.logger.Info("Not campaigning until the step-down's back-off ends", "cause", r.reason, "until", l.campaignAt)
}
