package faults

import (
	"fmt"
	"sort"
	"time"
)

// checkRecovery groups the faults into bursts (faults that overlap, or begin before
// the groups recovered from the ones before) and measures, for each group, how
// long after the burst's end it went on without a leader: the end of its last
// leaderless gap that began before the next burst (and within its bound after this
// one's end). A fault's effect may begin after it ends — a deleted Lease is created
// again a leaseDuration later — so the gap counts, not whether a leader happened to
// be there at the end. Late is a group whose recovery took longer than its bound
// (plus the duration of any control-plane fault in the burst, and the slack).
func checkRecovery(r Records, acts []act) (recoveries []Recovery, late []Violation) {
	order := make([]int, len(r.Faults))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(i, j int) bool { return r.Faults[order[i]].Start.Before(r.Faults[order[j]].Start) })
	gaps := map[string][]span{}
	for _, g := range r.Groups {
		gaps[g.Name] = leaderless(r, acts, g)
	}
	for i := 0; i < len(order); {
		burst := []int{order[i]}
		end := r.Faults[order[i]].End
		var rec Recovery
		var lateHere []Violation
		j := i + 1
		for {
			next := r.End
			if j < len(order) {
				next = r.Faults[order[j]].Start
			}
			var cp time.Duration
			for _, k := range burst {
				if f := r.Faults[k]; f.ControlPlane {
					cp += f.End.Sub(f.Start)
				}
			}
			rec, lateHere = Recovery{Faults: burst, From: end}, nil
			for _, g := range r.Groups {
				bound := g.Recovery + cp + r.Slack
				took := recoveryOf(gaps[g.Name], end, next, bound)
				if took > rec.Took || rec.Slowest == "" {
					rec.Took, rec.Bound, rec.Slowest = took, bound, g.Name
				}
				if took > bound {
					lateHere = append(lateHere, Violation{Check: "recovery", At: end,
						Detail: fmt.Sprintf("group %s had no leader for %s after the faults ended, bound %s", g.Name, took.Round(time.Millisecond), bound)})
				}
			}
			if j == len(order) || (!next.Before(end) && !next.Before(end.Add(rec.Took))) {
				break
			}
			burst = append(burst, order[j]) // it began before the groups recovered
			if f := r.Faults[order[j]]; f.End.After(end) {
				end = f.End
			}
			j++
		}
		i = j
		recoveries = append(recoveries, rec)
		late = append(late, lateHere...)
	}
	return recoveries, late
}

// span is a time range.
type span struct{ from, to time.Time }

// recoveryOf is how long after end a group with these leaderless gaps went on
// without a leader: the latest end of a gap that began before next (the next
// burst) and before end + bound, and ended after end.
func recoveryOf(gaps []span, end, next time.Time, bound time.Duration) time.Duration {
	var took time.Duration
	limit := end.Add(bound)
	if next.Before(limit) {
		limit = next
	}
	for _, g := range gaps {
		if g.from.Before(limit) && g.to.After(end) {
			took = max(took, g.to.Sub(end))
		}
	}
	return took
}

// leaderless is when g had no leader, from its first leader on: no party leading
// (its own log), or for a Pods group no pod carrying the label (the pod watch). A
// gap still open at the end of the records ends there; one that began after it (the
// processes stopping) is none.
func leaderless(r Records, acts []act, g Group) []span {
	var out []span
	if g.Source == Pods {
		var from time.Time
		led := false
		for _, s := range r.Labels {
			if s.Group != g.Name {
				continue
			}
			switch {
			case len(s.Pods) > 0 && !led:
				if !from.IsZero() {
					out = append(out, span{from, s.At})
				}
				led = true
			case len(s.Pods) == 0 && led && s.At.Before(r.End):
				from, led = s.At, false
			}
		}
		if !led && !from.IsZero() {
			out = append(out, span{from, r.End})
		}
		return out
	}
	var leading []act
	for _, a := range acts {
		if a.group == g.Name && a.what == "leading" {
			leading = append(leading, a)
		}
	}
	sort.Slice(leading, func(i, j int) bool { return leading[i].start.Before(leading[j].start) })
	var covered time.Time
	for _, a := range leading {
		if !covered.IsZero() && a.start.After(covered) && covered.Before(r.End) {
			out = append(out, span{covered, a.start})
		}
		if a.end.After(covered) {
			covered = a.end
		}
	}
	if !covered.IsZero() && covered.Before(r.End) {
		out = append(out, span{covered, r.End})
	}
	return out
}
