package faults

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/leaserecord"
)

// pickGroup reserves one group among names.
func (s *System) pickGroup(names []string, pick int) string {
	for i := range names {
		g := names[(pick+i)%len(names)]
		if s.reserve("group-" + g) {
			return g
		}
	}
	return ""
}

var electedGroups = []string{"fast-a", "fast-b", "mid", "slow", "web", "ext"}

// leaseDelete deletes a group's Lease under its leader.
type leaseDelete struct {
	pick  int
	group string
}

func (f *leaseDelete) claim(_ context.Context, s *System) (string, bool) {
	f.group = s.pickGroup(electedGroups, f.pick)
	return f.group, f.group != ""
}

func (f *leaseDelete) inject(ctx context.Context, s *System) error {
	return s.retry(ctx, func(ctx context.Context) error {
		err := s.cs.CoordinationV1().Leases(namespace).Delete(ctx, f.group, metav1.DeleteOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
}

func (f *leaseDelete) heal(_ context.Context, s *System) error {
	s.release("group-" + f.group)
	return nil
}

// hijack writes a group's Lease as a foreign writer that ignores the rules would:
// another holder, the next epoch, acquired now, without the project's annotations.
type hijack struct {
	pick  int
	group string
}

func (f *hijack) claim(_ context.Context, s *System) (string, bool) {
	f.group = s.pickGroup(electedGroups, f.pick)
	return f.group, f.group != ""
}

func (f *hijack) inject(ctx context.Context, s *System) error {
	s.mu.Lock()
	s.intruders++
	id := fmt.Sprintf("intruder-%d", s.intruders)
	s.mu.Unlock()
	return s.retry(ctx, func(ctx context.Context) error {
		l, err := s.cs.CoordinationV1().Leases(namespace).Get(ctx, f.group, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil // deleted: nothing to hijack
		}
		if err != nil {
			return err
		}
		now := metav1.NewMicroTime(time.Now())
		epoch := leaserecord.Epoch(l) + 1
		l.Spec.HolderIdentity, l.Spec.LeaseTransitions = &id, &epoch
		l.Spec.AcquireTime, l.Spec.RenewTime = &now, &now
		for _, a := range leaserecord.Reserved {
			delete(l.Annotations, a)
		}
		_, err = s.cs.CoordinationV1().Leases(namespace).Update(ctx, l, metav1.UpdateOptions{})
		return err
	})
}

func (f *hijack) heal(_ context.Context, s *System) error {
	s.release("group-" + f.group)
	return nil
}

// timings makes group mid's timings shorter or longer while it runs, and back.
type timings struct{ to Timings }

func (f *timings) claim(_ context.Context, s *System) (string, bool) {
	return "mid", s.reserve("group-mid")
}

func setTimings(g *v1alpha1.LeaderGroup, t Timings) {
	g.Spec.LeaseDuration = metav1.Duration{Duration: t.LeaseDuration}
	g.Spec.RenewDeadline = metav1.Duration{Duration: t.RenewDeadline}
	g.Spec.RetryPeriod = metav1.Duration{Duration: t.RetryPeriod}
}

func (f *timings) inject(ctx context.Context, s *System) error {
	s.addTimings("mid", f.to)
	return s.editGroup(ctx, "mid", func(g *v1alpha1.LeaderGroup) { setTimings(g, f.to) })
}

func (f *timings) heal(ctx context.Context, s *System) error {
	defer s.release("group-mid")
	return s.editGroup(ctx, "mid", func(g *v1alpha1.LeaderGroup) { setTimings(g, mid) })
}

// preferred sets preferredHolder — a running manager for fast-a, a pod for web —
// and clears it.
type preferred struct {
	pick          int
	group, holder string
}

func (f *preferred) claim(_ context.Context, s *System) (string, bool) {
	f.group = s.pickGroup([]string{"fast-a", "web"}, f.pick)
	switch f.group {
	case "":
		return "", false
	case "web":
		f.holder = fmt.Sprintf("web-%d", f.pick%podCount)
	default:
		var ids []string
		for _, m := range s.managers {
			if p := s.current(m); p != nil {
				ids = append(ids, p.id)
			}
		}
		if len(ids) == 0 {
			s.release("group-" + f.group)
			return "", false
		}
		f.holder = ids[f.pick%len(ids)]
	}
	return f.group + "→" + f.holder, true
}

func (f *preferred) inject(ctx context.Context, s *System) error {
	return s.editGroup(ctx, f.group, func(g *v1alpha1.LeaderGroup) { g.Spec.PreferredHolder = f.holder })
}

func (f *preferred) heal(ctx context.Context, s *System) error {
	defer s.release("group-" + f.group)
	return s.editGroup(ctx, f.group, func(g *v1alpha1.LeaderGroup) { g.Spec.PreferredHolder = "" })
}

// suspend suspends a Manager or Pods group and resumes it.
type suspend struct {
	pick  int
	group string
}

func (f *suspend) claim(_ context.Context, s *System) (string, bool) {
	f.group = s.pickGroup([]string{"fast-a", "fast-b", "mid", "slow", "web"}, f.pick)
	return f.group, f.group != ""
}

func (f *suspend) inject(ctx context.Context, s *System) error {
	return s.editGroup(ctx, f.group, func(g *v1alpha1.LeaderGroup) { g.Spec.Suspend = true })
}

func (f *suspend) heal(ctx context.Context, s *System) error {
	defer s.release("group-" + f.group)
	return s.editGroup(ctx, f.group, func(g *v1alpha1.LeaderGroup) { g.Spec.Suspend = false })
}

// pickPod reserves a Ready pod, half the time the labelled one, so long as another
// pod stays Ready.
func (s *System) pickPod(pick int) string {
	labelled := s.watch.labelled("web")
	s.mu.Lock()
	var ready []string
	for i := range podCount {
		name := fmt.Sprintf("web-%d", i)
		if s.ready[name] && !s.claimed["pod-"+name] {
			ready = append(ready, name)
		}
	}
	s.mu.Unlock()
	if len(ready) < 2 {
		return ""
	}
	pod := ready[pick%len(ready)]
	if pick%2 == 0 && len(labelled) == 1 {
		for _, r := range ready {
			if r == labelled[0] {
				pod = r
			}
		}
	}
	if !s.reserve("pod-" + pod) {
		return ""
	}
	return pod
}

// unready turns a pod unready, as a failing readiness probe would, and Ready again.
type unready struct {
	pick int
	pod  string
}

func (f *unready) claim(_ context.Context, s *System) (string, bool) {
	f.pod = s.pickPod(f.pick)
	return f.pod, f.pod != ""
}

func (f *unready) inject(ctx context.Context, s *System) error { return s.setReady(ctx, f.pod, false) }

func (f *unready) heal(ctx context.Context, s *System) error {
	defer s.release("pod-" + f.pod)
	return s.setReady(ctx, f.pod, true)
}

// writerKill turns the labelled pod unready and SIGKILLs the status writer a few
// milliseconds later, in the middle of the switch that follows.
type writerKill struct {
	pick int
	pod  string
	sl   *slot
}

func (f *writerKill) claim(ctx context.Context, s *System) (string, bool) {
	w, id := s.writer(ctx)
	labelled := s.watch.labelled("web")
	if w == nil || len(labelled) != 1 || !s.reserve(w.resource()) {
		return "", false
	}
	if p := s.current(w); p == nil || p.id != id {
		s.release(w.resource()) // replaced since: no longer the writer
		return "", false
	}
	f.pod = s.pickPod(0) // the labelled pod when it can
	if f.pod == "" {
		s.release(w.resource())
		return "", false
	}
	f.sl = w
	return id + " switching from " + f.pod, true
}

func (f *writerKill) inject(ctx context.Context, s *System) error {
	if err := s.setReady(ctx, f.pod, false); err != nil {
		return err
	}
	time.Sleep(time.Duration(f.pick%150) * time.Millisecond) // into the switch, or not quite
	return s.kill(f.sl)
}

func (f *writerKill) heal(ctx context.Context, s *System) error {
	defer s.release(f.sl.resource(), "pod-"+f.pod)
	if err := s.setReady(ctx, f.pod, true); err != nil {
		return err
	}
	return s.startSlot(ctx, f.sl)
}
