package election

import (
	"context"
	"math/rand/v2"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"

	"github.com/election-manager/election-manager/internal/leaserecord"
)

type writeKind int

const (
	writeCreate writeKind = iota
	writeAcquire
	writeRenew
)

// pendingWrite is the one API write an elector may have in flight. It runs on its
// own goroutine so that the loop keeps its timer: leadership ends at its deadline
// even if the HTTP call never returns.
type pendingWrite struct {
	kind writeKind
	how  leaserecord.How
	// sent is read from the clock just before sending: a success makes the elector
	// lead until sent + renewDeadline (until), whatever the response's latency was.
	sent, until time.Time
	// basedOn is the resourceVersion the write was based on ("" for a create).
	basedOn string
	cancel  context.CancelFunc
	result  chan writeResult // room for one: the writer never blocks
}

type writeResult struct {
	lease *coordinationv1.Lease
	err   error
	// queued: the write waited for a write slot, every one busy.
	queued bool
}

// loop is the state only the elector's goroutine touches.
type loop struct {
	e      *Elector
	logger klog.Logger

	// own is the object our last successful write returned, while leading: the next
	// renewal is based on it (its resourceVersion), so a renewal is one Update.
	own   *coordinationv1.Lease
	epoch int32 // the epoch of our current term

	// maxEpoch is the highest epoch seen, so a re-created Lease keeps growing.
	maxEpoch int32
	// missingSince is when this elector found the Lease missing (zero while it
	// exists): a Lease that had a holder is re-created only a leaseDuration later.
	missingSince time.Time

	inflight      *pendingWrite
	nextRenew     time.Time
	renewConflict bool      // a renewal met a conflict: wait for the informer to explain it
	notBefore     time.Time // a follower's next attempt after a failed one
	// lostRace: an acquisition based on version lostRaceRV met a conflict. Another
	// candidate won; the informer will show it, and then there is nothing to wait for.
	lostRace   bool
	lostRaceRV string
	backoff    wait.Backoff

	// stepDown is a StepDown request the loop has taken and not yet finished;
	// campaignAt is when its back-off ends: no acquisition before.
	stepDown   *stepDownRequest
	campaignAt time.Time
}

func (e *Elector) run(ctx context.Context) {
	defer close(e.done)
	defer e.leases.unsubscribe(e.key, e.wake)
	l := &loop{e: e, logger: klog.FromContext(ctx)}
	l.resetBackoff()
	if !e.leases.WaitForSync(ctx) {
		return
	}
	timer := e.clock.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := e.clock.Now()
		if leading, until := e.leadingState(); leading && reached(now, until) {
			l.lose("No successful renewal within renewDeadline")
		}
		next := l.step(ctx, now)
		timer.Stop()
		if !next.IsZero() {
			timer.Reset(max(next.Sub(now), 0))
		}
		var results <-chan writeResult
		if l.inflight != nil {
			results = l.inflight.result
		}
		select {
		case <-ctx.Done():
			l.shutdown(ctx)
			return
		case <-e.wake:
		case <-timer.C():
		case r := <-results:
			l.finish(r)
		}
	}
}

// step starts the write the state calls for, if any, and returns when to look again
// (zero: only on a wake or a write's result).
func (l *loop) step(ctx context.Context, now time.Time) time.Time {
	e, cfg := l.e, l.e.config()
	if r := e.takeStepDown(); r != nil {
		l.stepDown = r
	}
	if next, leading := l.leaderStep(ctx, now, cfg); leading {
		return next
	}

	l.followerStepDown()
	v := l.view(now)
	if l.inflight != nil {
		return time.Time{}
	}
	d := decideFollower(now, e.id, v, cfg.LeaseDuration)
	if (d.create || d.acquire) && now.Before(l.campaignAt) {
		return l.campaignAt
	}
	if (d.create || d.acquire) && cfg.EpochFloor != nil {
		// About to hand out an epoch: first learn the highest the group recorded,
		// which a Lease deleted or re-created before this process saw it may be
		// below. Fresh unless a writer that keeps the epoch wrote this object: its
		// first such write read it fresh, and the object's epochs are above it.
		floor, err := cfg.EpochFloor(d.create || !leaserecord.Kept(v.cur))
		if err != nil {
			l.logger.V(2).Info("Not taking the lease yet: cannot read the epoch floor", "err", err)
			return now.Add(cfg.RetryPeriod)
		}
		// Reading the group may have updated the config (an External group's elector
		// learns there whether the Lease keeps its epoch): this write carries it.
		cfg = e.config()
		if floor > l.maxEpoch {
			l.maxEpoch = floor
			v = l.view(now)
			d = decideFollower(now, e.id, v, cfg.LeaseDuration)
		}
	}
	if !d.create && !d.acquire {
		return d.retryAt
	}
	cur := v.cur
	if l.lostRace && resourceVersion(cur) != l.lostRaceRV {
		l.lostRace, l.notBefore = false, time.Time{}
	}
	if now.Before(l.notBefore) {
		return l.notBefore
	}
	until := now.Add(cfg.RenewDeadline)
	if d.create {
		// Epoch 1 for the first holder ever (0 means "never held"); after a deletion,
		// one more than the highest epoch known, so the epoch does not go back.
		l.startWrite(ctx, writeCreate, leaserecord.Create(e.key, cfg.writer(), now, l.maxEpoch+1), leaserecord.Elected, now, until, until)
	} else {
		l.startWrite(ctx, writeAcquire, leaserecord.Acquire(cur, cfg.writer(), now, d.how, l.maxEpoch), d.how, now, until, until)
	}
	return time.Time{}
}

// view is what a follower decides on: the informer's Lease and when it was first
// seen, what is known of Lease objects gone before it, and the highest epoch known.
func (l *loop) view(now time.Time) (v followerView) {
	e, tracker := l.e, l.e.leases.Tracker()
	g, gone := tracker.Gone(e.key)
	if gone {
		l.maxEpoch = max(l.maxEpoch, leaserecord.Epoch(g.Lease))
	}
	cur := e.leases.Get(e.key)
	if leaserecord.Deleting(cur) {
		// Kept until its group records its epoch: nobody may write it, and nothing
		// can be created in its place until it goes. Its going wakes us.
		l.observe(nil, now)
		l.maxEpoch = max(l.maxEpoch, leaserecord.Epoch(cur))
		// Its holder's renewals fail from the deletion on: once it is gone, the wait
		// for that holder counts from when this process saw its record last change,
		// however long the Lease was kept (the tombstone says when, and may be
		// pruned after the Lease goes).
		l.missingSince = now
		if g, ok := tracker.Gone(e.key); ok && g.Lease.UID == cur.UID {
			l.missingSince = g.At
		}
		v.deleting = true
		return v
	}
	if v.cur = cur; v.cur != nil {
		v.since = tracker.Since(e.key, v.cur)
		l.observe(v.cur, now)
		l.missingSince = time.Time{}
		if gone && g.Lease.UID != v.cur.UID {
			v.gone = &g // the object was replaced: its holder may still lead
		}
		v.behind = leaserecord.Epoch(v.cur) < l.maxEpoch
		v.headStart = l.headStart(now, v)
		return v
	}
	l.observe(nil, now)
	if l.missingSince.IsZero() {
		l.missingSince = now
	}
	if gone {
		v.gone = &g
	}
	v.heldBefore, v.missingSince = l.maxEpoch > 0, l.missingSince
	return v
}

// headStart is how long this elector leaves a free Lease to the successor its config
// names, when that is another candidate. Asked only once the Lease is free or has
// expired on this clock: followers wake at every renewal they see.
func (l *loop) headStart(now time.Time, v followerView) time.Duration {
	e, cfg := l.e, l.e.config()
	if cfg.Successor == nil {
		return 0
	}
	if leaserecord.Holder(v.cur) != "" && now.Before(v.since.Add(leaserecord.Duration(v.cur, cfg.LeaseDuration))) {
		return 0
	}
	if s := cfg.Successor(leaserecord.Previous(v.cur)); s != "" && s != e.id {
		return cfg.Timings().SuccessorHeadStart()
	}
	return 0
}

// leaderStep renews when it is time; it reports leading=false when the elector
// follows (possibly because resolving a conflict just ended its leadership).
func (l *loop) leaderStep(ctx context.Context, now time.Time, cfg *Config) (next time.Time, leading bool) {
	leading, until := l.e.leadingState()
	if leading {
		l.otherTermStepDown()
	}
	switch {
	case !leading:
		return time.Time{}, false
	case l.replaced():
		return time.Time{}, false
	case l.inflight != nil:
		return until, true
	case l.stepDown != nil:
		l.stepDownNow(ctx, l.stepDown)
		return time.Time{}, false
	case l.renewConflict && !l.resolveConflict():
		leading, _ = l.e.leadingState()
		return until, leading
	case cfg.HandOverTo != "" && cfg.HandOverTo != l.e.id && !leaserecord.HandoverLapsed(l.own, cfg.HandOverTo, cfg.HandOverAttempt) &&
		(cfg.Live == nil || cfg.Live(cfg.HandOverTo)):
		// Not again to a target that let this attempt's reservation lapse: the record
		// says so, whoever holds it now.
		l.handOver(ctx, cfg.HandOverTo)
		return time.Time{}, false
	case now.Before(l.nextRenew):
		return earliest(l.nextRenew, until), true
	}
	// The renewal may be applied without our hearing of it, and followers then count
	// the leaseDuration it carries from when they see it. So leadership ends by now +
	// the renewDeadline it is sent with, whatever the last success allowed: that
	// matters when the timings shrink, when until would otherwise come later.
	if capped := now.Add(cfg.RenewDeadline); capped.Before(until) {
		until = l.e.shortenLeading(capped)
	}
	// The write may not outlive our leadership; its success extends it to
	// now + renewDeadline.
	l.startWrite(ctx, writeRenew, leaserecord.Renew(l.own, cfg.writer(), now), "", now, until, now.Add(cfg.RenewDeadline))
	return until, true
}

// replaced ends leadership as soon as the informer shows our term is over: the
// Lease deleted, replaced by another object (deleted and created again), or
// written by someone else at our epoch or later (a takeover, or a holder cleared by
// hand). Whatever that record says, it is no longer our term, and a new object's
// epochs may not continue ours. A version older than our term is the informer
// lagging behind our own writes.
func (l *loop) replaced() bool {
	e := l.e
	if l.own == nil {
		return false
	}
	if g, gone := e.leases.Tracker().Gone(e.key); gone && g.Lease.UID == l.own.UID {
		l.lose("Lease deleted") // or being deleted
		return true
	}
	cur := e.leases.Get(e.key)
	switch {
	case cur == nil:
	case leaserecord.Deleting(cur):
		// Seen here before the tracker has buried it: a renewal must not be retried
		// on it.
		l.lose("Lease deleted")
		return true
	case cur.UID != l.own.UID:
		l.lose("Lease replaced by another object", "holder", leaserecord.Holder(cur), "holderEpoch", leaserecord.Epoch(cur))
		return true
	case !leaserecord.Names(cur, e.id, l.epoch) && leaserecord.Epoch(cur) >= l.epoch:
		l.lose("Lease taken over", "holder", leaserecord.Holder(cur), "holderEpoch", leaserecord.Epoch(cur))
		return true
	}
	return false
}

func (l *loop) startWrite(ctx context.Context, kind writeKind, lease *coordinationv1.Lease, how leaserecord.How, sent, deadline, until time.Time) {
	wctx, cancel := context.WithTimeout(ctx, deadline.Sub(sent))
	w := &pendingWrite{kind: kind, how: how, sent: sent, until: until, basedOn: lease.ResourceVersion, cancel: cancel, result: make(chan writeResult, 1)}
	leases, slots := l.e.client.Leases(l.e.key.Namespace), l.e.writes
	go func() {
		var r writeResult
		slotCtx := wctx
		if kind != writeRenew {
			// An acquisition that got its slot late could land after its deadline:
			// the record would name an elector that does not lead, and the group
			// stay leaderless for a leaseDuration. Better to decide again.
			var cancelSlot context.CancelFunc
			slotCtx, cancelSlot = context.WithTimeout(wctx, deadline.Sub(sent)/2)
			defer cancelSlot()
		}
		release, queued, err := slots.take(slotCtx, kind)
		if err != nil {
			w.result <- writeResult{err: err, queued: queued}
			return
		}
		defer release()
		r.queued = queued
		if kind == writeCreate {
			r.lease, r.err = leases.Create(wctx, lease, metav1.CreateOptions{})
		} else {
			r.lease, r.err = leases.Update(wctx, lease, metav1.UpdateOptions{})
		}
		w.result <- r
	}()
	l.inflight = w
}

// finish handles the result of the write in flight.
func (l *loop) finish(r writeResult) {
	e, w, cfg := l.e, l.inflight, l.e.config()
	l.inflight = nil
	w.cancel()
	now := e.clock.Now()

	if w.kind == writeRenew {
		e.pace.observe(cfg, now.Sub(w.sent), r.queued, r.err)
		leading, until := e.leadingState()
		if leading && reached(now, until) {
			l.lose("No successful renewal within renewDeadline")
			leading = false
		}
		switch {
		case !leading:
			// Leadership ended while the renewal was in flight; if it landed, the
			// record names us and we wait for it to expire like anyone else.
			if r.err == nil {
				l.observe(r.lease, now)
			}
		case r.err == nil:
			l.own = r.lease
			l.observeOwn(r.lease)
			e.setLeading(l.epoch, w.sent, w.until, now)
			// Paced by send times, so a slow response does not stretch the period.
			l.nextRenew = e.pace.renewAt(cfg, now, w.sent, 1)
		case apierrors.IsConflict(r.err):
			l.logger.V(2).Info("Renewal conflicted, checking the lease in the cache", "err", r.err)
			l.renewConflict = true
		case apierrors.IsNotFound(r.err):
			l.lose("Lease deleted")
		default:
			l.logWriteError("Failed to renew lease", r.err)
			// Again after a retry period, or after a quarter of the time left when
			// that comes first (renewals spaced out for a slow server leave less
			// than a period), but not sooner than a quarter period: errors that come
			// back at once must not turn into a storm against a recovering server.
			l.nextRenew = earliest(w.sent.Add(cfg.RetryPeriod), now.Add(max(until.Sub(now)/4, cfg.RetryPeriod/4)))
		}
		return
	}

	if r.err != nil {
		if apierrors.IsConflict(r.err) || apierrors.IsAlreadyExists(r.err) {
			// Not an error to back off from: wait for the informer to show the winner
			// (a retry period at most, in case it never does).
			l.logger.V(4).Info("Another candidate wrote the lease first", "err", r.err)
			l.lostRace, l.lostRaceRV, l.notBefore = true, w.basedOn, now.Add(cfg.RetryPeriod)
		} else {
			l.logWriteError("Failed to acquire lease", r.err)
			l.notBefore = now.Add(l.backoff.Step())
		}
		return
	}
	l.resetBackoff()
	l.notBefore, l.lostRace = time.Time{}, false
	if reached(now, w.until) {
		// Too late to lead safely: others may take over at until. The record names us;
		// we wait for it to expire and acquire again with a new epoch.
		l.logger.Info("Acquired the lease too late to lead", "latency", now.Sub(w.sent))
		l.observe(r.lease, now)
		return
	}
	l.own, l.epoch = r.lease, leaserecord.Epoch(r.lease)
	l.observeOwn(r.lease)
	// The first renewal of a term comes after a random half to whole interval (then
	// booked like any renewal): electors started together (a process starting, or
	// taking over a stopped one's groups) would otherwise renew in lockstep and hit
	// the API server in bursts. The interval is the paced one: a burst of takeovers
	// into a strained server must not add a burst of early renewals. Renewing early
	// is always safe.
	l.nextRenew = e.pace.renewAt(cfg, now, w.sent, 0.5+rand.Float64()/2)
	_, newHolder := e.setLeading(l.epoch, w.sent, w.until, now)
	l.logger.Info("Started leading", "epoch", l.epoch, "how", w.how)
	if newHolder && e.cb.OnNewLeader != nil {
		e.cb.OnNewLeader(e.id)
	}
	if e.cb.OnStartedLeading != nil {
		e.cb.OnStartedLeading(l.epoch)
	}
}

// resolveConflict reads the informer after a renewal conflicted, and tells whether
// the renewal can be retried now. Only the informer is read: a follower's view is
// what decides anyway, and the deadline ends leadership if it never catches up.
func (l *loop) resolveConflict() bool {
	e := l.e
	cur := e.leases.Get(e.key)
	switch {
	case cur == nil || cur.ResourceVersion == l.own.ResourceVersion:
		return false // the informer has not seen the version that conflicted yet
	case cur.UID != l.own.UID:
		l.lose("Lease replaced by another object", "holder", leaserecord.Holder(cur), "holderEpoch", leaserecord.Epoch(cur))
		return false
	case leaserecord.Names(cur, e.id, l.epoch):
		// Someone changed only metadata, or our own timed-out write landed.
		l.own, l.renewConflict = cur.DeepCopy(), false
		return true
	case leaserecord.Epoch(cur) < l.epoch:
		return false // the same object at an older version than our term's: the informer lags
	default:
		l.lose("Lease taken over", "holder", leaserecord.Holder(cur), "holderEpoch", leaserecord.Epoch(cur))
		return false
	}
}

// lose ends this elector's leadership (no release: the record may already be
// someone else's, and after a reconnect a release could clear their lease).
func (l *loop) lose(reason string, kv ...any) {
	if !l.e.clearLeading() {
		return
	}
	l.own, l.renewConflict = nil, false
	l.notBefore, l.lostRace = time.Time{}, false
	l.resetBackoff()
	l.logger.Info("Stopped leading", append([]any{"reason", reason, "epoch", l.epoch}, kv...)...)
	if l.e.cb.OnStoppedLeading != nil {
		l.e.cb.OnStoppedLeading()
	}
}

// observe records the informer's (or a write's) view as a follower sees it.
func (l *loop) observe(cur *coordinationv1.Lease, now time.Time) {
	if cur != nil {
		l.observeOwn(cur)
	}
	holder := leaserecord.Holder(cur)
	if l.e.observeHolder(holder, leaserecord.Epoch(cur), now) && l.e.cb.OnNewLeader != nil {
		l.e.cb.OnNewLeader(holder)
	}
}

// observeOwn records a version our own write returned: its expiry clock starts
// when we got it (the informer may deliver it later), and its epoch counts.
func (l *loop) observeOwn(cur *coordinationv1.Lease) {
	l.e.leases.Tracker().Since(l.e.key, cur)
	l.maxEpoch = max(l.maxEpoch, leaserecord.Epoch(cur))
}

func (l *loop) resetBackoff() {
	rp := l.e.config().RetryPeriod
	l.backoff = wait.Backoff{Duration: max(rp/10, 10*time.Millisecond), Factor: 2, Jitter: 0.1, Steps: 1 << 30, Cap: rp}
}

func (l *loop) logWriteError(msg string, err error) {
	if apierrors.IsForbidden(err) {
		// Not transient: RBAC is missing. Worth seeing at default verbosity.
		l.logger.Error(err, msg)
		return
	}
	l.logger.V(2).Info(msg, "err", err)
}

func resourceVersion(l *coordinationv1.Lease) string {
	if l == nil {
		return ""
	}
	return l.ResourceVersion
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
