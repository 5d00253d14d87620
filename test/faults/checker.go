package faults

import (
	"fmt"
	"sort"
	"time"
)

// Violation is a broken promise, or a process that panicked or leaked.
type Violation struct {
	Check  string
	At     time.Time
	Detail string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s at %s: %s", v.Check, v.At.Format("15:04:05.000000"), v.Detail)
}

// Recovery is how long the groups went without a leader after a burst of
// overlapping faults ended.
type Recovery struct {
	Faults []int // indexes into Records.Faults
	From   time.Time
	Took   time.Duration
	Bound  time.Duration
	// Slowest is the group that took longest.
	Slowest string
}

// Result is what the checker found.
type Result struct {
	Violations []Violation
	Recoveries []Recovery
	// AfterThaw is, for each child whose elector was stopped past its deadline, how
	// long the child lived on after the elector was continued.
	AfterThaw []time.Duration
}

// Check runs every check over the records.
func Check(r Records) Result {
	var res Result
	acts := effectiveActs(r)
	res.Violations = append(res.Violations, r.Problems...)
	res.Violations = append(res.Violations, checkSeen(r, acts)...)
	res.Violations = append(res.Violations, checkOverlap(acts)...)
	res.Violations = append(res.Violations, checkEpochs(acts)...)
	res.Violations = append(res.Violations, checkLeaseEpochs(r)...)
	res.Violations = append(res.Violations, checkRenewals(r, acts)...)
	frozen, afterThaw := checkFrozenChildren(r)
	res.Violations, res.AfterThaw = append(res.Violations, frozen...), afterThaw
	res.Violations = append(res.Violations, checkLabels(r)...)
	res.Violations = append(res.Violations, checkStatus(r)...)
	recoveries, late := checkRecovery(r, acts)
	res.Recoveries = recoveries
	res.Violations = append(res.Violations, late...)
	sort.SliceStable(res.Violations, func(i, j int) bool { return res.Violations[i].At.Before(res.Violations[j].At) })
	return res
}

// act is something a party did as leader of a group's term: led (its own log) or
// ran a child (the child's own records).
type act struct {
	group, party string
	epoch        int32
	start, end   time.Time
	what         string
	open         bool
}

func (a act) String() string {
	end := a.end.Format("15:04:05.000000")
	if a.open {
		end += " (open)"
	}
	return fmt.Sprintf("%s of %s at epoch %d, %s–%s", a.what, a.party, a.epoch, a.start.Format("15:04:05.000000"), end)
}

func (r Records) group(name string) Group {
	for _, g := range r.Groups {
		if g.Name == name {
			return g
		}
	}
	return Group{Name: name}
}

// frozenOver returns the freeze of party that began within [start, end) and
// outlasted the group's longest renewDeadline: the party's own deadline passed while
// it was stopped, so it led until the freeze began at most — it cannot act while
// stopped, and must not once resumed.
func (r Records) frozenOver(g Group, party string, start, end time.Time) (Freeze, bool) {
	for _, f := range r.Freezes {
		if f.Party == party && !f.From.Before(start) && f.From.Before(end) && f.To.Sub(f.From) > g.maxRenewDeadline() {
			return f, true
		}
	}
	return Freeze{}, false
}

// effectiveActs are the intervals and runs, each leading interval cut at the start
// of a freeze that outlasted its deadline, and each child of a frozen elector cut
// there too: a stopped elector cannot stop its child, which the README states as
// a limit (checkFrozenChildren bounds what happens after it resumes).
func effectiveActs(r Records) []act {
	var out []act
	for _, in := range r.Intervals {
		a := act{group: in.Group, party: in.Party, epoch: in.Epoch, start: in.Start, end: orEnd(in.End, r.End), what: "leading", open: in.Open}
		if f, ok := r.frozenOver(r.group(in.Group), in.Party, a.start, a.end); ok {
			a.end = f.From
		}
		out = append(out, a)
	}
	for _, run := range r.Runs {
		a := act{group: run.Group, party: run.Holder, epoch: run.Epoch, start: run.Start, end: orEnd(run.End, r.End), what: "child", open: run.End.IsZero()}
		if f, ok := r.frozenOverRun(run, a.end); ok {
			a.end = f.From
		}
		out = append(out, a)
	}
	return out
}

// frozenOverRun returns a freeze of the run's elector that began while the child
// lived, longer than the group's renewDeadline.
func (r Records) frozenOverRun(run Run, end time.Time) (Freeze, bool) {
	g := r.group(run.Group)
	for _, f := range r.Freezes {
		if f.Party == run.Holder && f.From.Before(end) && f.To.After(run.Start) && f.To.Sub(f.From) > g.maxRenewDeadline() {
			return f, true
		}
	}
	return Freeze{}, false
}

func orEnd(t, end time.Time) time.Time {
	if t.IsZero() {
		return end
	}
	return t
}

// checkSeen: the checker saw every group lead — a leading interval (or for a Pods
// group a labelled pod) and a Lease version — and the External group's children;
// records that show nothing would make every other check pass.
func checkSeen(r Records, acts []act) []Violation {
	var out []Violation
	for _, g := range r.Groups {
		led, versions, children := false, false, false
		for _, a := range acts {
			led = led || (a.group == g.Name && a.what == "leading")
			children = children || (a.group == g.Name && a.what == "child")
		}
		for _, s := range r.Labels {
			led = led || (g.Source == Pods && s.Group == g.Name && len(s.Pods) > 0)
		}
		for _, v := range r.Leases {
			versions = versions || v.Group == g.Name
		}
		if !led || !versions || (g.Source == External && !children) {
			out = append(out, Violation{Check: "records", At: r.End,
				Detail: fmt.Sprintf("group %s: the records show no leader (%v), no Lease version (%v) or, for External, no child (%v): the checker cannot see it", g.Name, !led, !versions, !children)})
		}
	}
	return out
}

// checkOverlap: no two terms of a group act at once — leading intervals and
// children of different terms (another party, or the same party's other epoch)
// never overlap.
func checkOverlap(acts []act) []Violation {
	var out []Violation
	byGroup := map[string][]act{}
	for _, a := range acts {
		byGroup[a.group] = append(byGroup[a.group], a)
	}
	for group, as := range byGroup {
		sort.Slice(as, func(i, j int) bool { return as[i].start.Before(as[j].start) })
		for i, a := range as {
			for _, b := range as[i+1:] {
				if !b.start.Before(a.end) {
					continue
				}
				if a.party == b.party && a.epoch == b.epoch {
					continue
				}
				out = append(out, Violation{Check: "overlap", At: b.start,
					Detail: fmt.Sprintf("group %s: %s overlaps %s by %s", group, a, b, a.end.Sub(b.start).Round(time.Microsecond))})
			}
		}
	}
	return out
}

// checkEpochs: per group, terms (a party at an epoch) begin in strictly growing
// epochs, and no epoch goes to two parties.
func checkEpochs(acts []act) []Violation {
	type term struct {
		party string
		epoch int32
	}
	var out []Violation
	byGroup := map[string][]act{}
	for _, a := range acts {
		byGroup[a.group] = append(byGroup[a.group], a)
	}
	for group, as := range byGroup {
		first := map[term]act{}
		for _, a := range as {
			k := term{a.party, a.epoch}
			if f, ok := first[k]; !ok || a.start.Before(f.start) {
				first[k] = a
			}
		}
		terms := make([]act, 0, len(first))
		for _, a := range first {
			terms = append(terms, a)
		}
		sort.Slice(terms, func(i, j int) bool { return terms[i].start.Before(terms[j].start) })
		owner := map[int32]string{}
		for i, a := range terms {
			if other, ok := owner[a.epoch]; ok && other != a.party {
				out = append(out, Violation{Check: "epoch", At: a.start,
					Detail: fmt.Sprintf("group %s: epoch %d given to %s and to %s", group, a.epoch, other, a.party)})
			}
			owner[a.epoch] = a.party
			if i > 0 && a.epoch <= terms[i-1].epoch {
				out = append(out, Violation{Check: "epoch", At: a.start,
					Detail: fmt.Sprintf("group %s: %s began after %s at an epoch not above it", group, a, terms[i-1])})
			}
		}
	}
	return out
}

// checkLeaseEpochs: the Lease's epoch, as a watch saw every version, never goes
// down (a Lease deleted and created again starts above), and one epoch never names
// two holders.
func checkLeaseEpochs(r Records) []Violation {
	var out []Violation
	highest := map[string]int32{}
	holders := map[string]map[int32]string{}
	for _, v := range r.Leases {
		if v.Deleted {
			continue
		}
		if v.Epoch < highest[v.Group] {
			out = append(out, Violation{Check: "lease epoch", At: v.At,
				Detail: fmt.Sprintf("group %s: the Lease went back to epoch %d (holder %q) after %d", v.Group, v.Epoch, v.Holder, highest[v.Group])})
		}
		highest[v.Group] = max(highest[v.Group], v.Epoch)
		if v.Holder == "" {
			continue
		}
		if holders[v.Group] == nil {
			holders[v.Group] = map[int32]string{}
		}
		if h, ok := holders[v.Group][v.Epoch]; ok && h != v.Holder {
			out = append(out, Violation{Check: "lease epoch", At: v.At,
				Detail: fmt.Sprintf("group %s: epoch %d names %s, and earlier %s", v.Group, v.Epoch, v.Holder, h)})
		}
		holders[v.Group][v.Epoch] = v.Holder
	}
	return out
}

// checkRenewals: no party renews a term after that term ended in its own log (or,
// frozen past its deadline, after the freeze began): a resumed process does not act
// on its old term. renewTime is the send time on the writer's clock, the same
// machine's.
func checkRenewals(r Records, acts []act) []Violation {
	type term struct {
		group, party string
		epoch        int32
	}
	ends := map[term]time.Time{}
	for _, a := range acts {
		if a.what != "leading" {
			continue
		}
		k := term{a.group, a.party, a.epoch}
		if a.end.After(ends[k]) {
			ends[k] = a.end
		}
	}
	var out []Violation
	reported := map[term]bool{}
	for _, v := range r.Leases {
		k := term{v.Group, v.Holder, v.Epoch}
		end, ok := ends[k]
		if v.Deleted || v.Holder == "" || !ok || reported[k] || !v.RenewTime.After(end.Add(time.Millisecond)) {
			continue
		}
		reported[k] = true
		out = append(out, Violation{Check: "renewal after the term", At: v.RenewTime,
			Detail: fmt.Sprintf("group %s: %s renewed epoch %d at %s, after its term ended at %s", v.Group, v.Holder, v.Epoch,
				v.RenewTime.Format("15:04:05.000000"), end.Format("15:04:05.000000"))})
	}
	return out
}

// checkFrozenChildren: a child whose elector was stopped past its deadline is dead
// within a retryPeriod (the elector's loop wakes) and the grace period (at most
// leaseDuration - renewDeadline) of the elector resuming.
func checkFrozenChildren(r Records) (out []Violation, afterThaw []time.Duration) {
	for _, run := range r.Runs {
		f, ok := r.frozenOverRun(run, orEnd(run.End, r.End))
		if !ok {
			continue
		}
		g := r.group(run.Group)
		var grace time.Duration
		for _, t := range g.Timings {
			grace = max(grace, t.LeaseDuration-t.RenewDeadline)
		}
		limit := f.To.Add(g.maxRetryPeriod() + grace + r.Slack)
		end := orEnd(run.End, r.End)
		afterThaw = append(afterThaw, end.Sub(f.To))
		if end.After(limit) {
			out = append(out, Violation{Check: "frozen elector's child", At: f.To,
				Detail: fmt.Sprintf("group %s: the child (pid %d, epoch %d) of %s, stopped %s–%s, lived until %s, past %s", run.Group, run.Pid, run.Epoch,
					run.Holder, f.From.Format("15:04:05.000"), f.To.Format("15:04:05.000"), end.Format("15:04:05.000"), limit.Format("15:04:05.000"))})
		}
	}
	return out, afterThaw
}

// checkLabels: the leader label is never on two pods of a group that take new
// requests (Ready, not terminating). A terminating pod may keep it until its successor
// has it (the Pods source's order, so that a draining leader goes on answering).
func checkLabels(r Records) []Violation {
	var out []Violation
	for _, s := range r.Labels {
		if len(s.Serving) > 1 {
			out = append(out, Violation{Check: "leader label", At: s.At,
				Detail: fmt.Sprintf("group %s: the leader label on %v at once, all Ready and not terminating", s.Group, s.Serving)})
		}
	}
	return out
}

// checkStatus: each group's status never goes back in epochs, its history is
// newest first in strictly falling epochs, and every term it records — holder,
// epoch, how it began and ended — is one the Lease's versions show.
func checkStatus(r Records) []Violation {
	type term struct {
		group, holder string
		epoch         int32
	}
	seen := map[term][]int{}             // Lease versions naming the term, by index
	starts := map[term]map[string]bool{} // how the Lease versions say it began
	for i, v := range r.Leases {
		if v.Deleted || v.Holder == "" {
			continue
		}
		k := term{v.Group, v.Holder, v.Epoch}
		seen[k] = append(seen[k], i)
		if starts[k] == nil {
			starts[k] = map[string]bool{}
		}
		starts[k][v.StartReason] = true
	}
	// endReasons: how the versions after a term's last say it ended.
	endReasons := func(k term) map[string]bool {
		idx := seen[k]
		out := map[string]bool{}
		for _, v := range r.Leases[idx[len(idx)-1]+1:] {
			if v.Group == k.group {
				out[v.EndReason] = true
			}
		}
		return out
	}
	var out []Violation
	last := map[string]StatusVersion{}
	for _, s := range r.Statuses {
		prev, had := last[s.Group]
		last[s.Group] = s
		if had && s.Transitions < prev.Transitions {
			out = append(out, Violation{Check: "status", At: s.At,
				Detail: fmt.Sprintf("group %s: status went back from epoch %d to %d", s.Group, prev.Transitions, s.Transitions)})
		}
		if had && len(prev.History) > 0 && len(s.History) > 0 && s.History[0].Transition < prev.History[0].Transition {
			out = append(out, Violation{Check: "status", At: s.At,
				Detail: fmt.Sprintf("group %s: history went back from epoch %d to %d", s.Group, prev.History[0].Transition, s.History[0].Transition)})
		}
		if s.Holder != "" {
			if _, ok := seen[term{s.Group, s.Holder, s.Transitions}]; !ok {
				out = append(out, Violation{Check: "status", At: s.At,
					Detail: fmt.Sprintf("group %s: status names %s at epoch %d, which no Lease version did", s.Group, s.Holder, s.Transitions)})
			}
		}
		for i, h := range s.History {
			if i > 0 && h.Transition >= s.History[i-1].Transition {
				out = append(out, Violation{Check: "status", At: s.At,
					Detail: fmt.Sprintf("group %s: history not in falling epochs: %d after %d", s.Group, h.Transition, s.History[i-1].Transition)})
			}
			k := term{s.Group, h.Holder, h.Transition}
			if _, ok := seen[k]; !ok {
				out = append(out, Violation{Check: "status", At: s.At,
					Detail: fmt.Sprintf("group %s: history has %s at epoch %d, which no Lease version named", s.Group, h.Holder, h.Transition)})
				continue
			}
			if known(h.StartReason) && !starts[k][h.StartReason] {
				out = append(out, Violation{Check: "status", At: s.At,
					Detail: fmt.Sprintf("group %s: history says %s began epoch %d %s; the Lease says %v", s.Group, h.Holder, h.Transition, h.StartReason, keys(starts[k]))})
			}
			if known(h.EndReason) {
				if ends := endReasons(k); !ends[h.EndReason] {
					out = append(out, Violation{Check: "status", At: s.At,
						Detail: fmt.Sprintf("group %s: history says %s's epoch %d ended %s; no later Lease version says so (%v)", s.Group, h.Holder, h.Transition, h.EndReason, keys(ends))})
				}
			}
		}
	}
	return out
}

func known(reason string) bool { return reason != "" && reason != "Unknown" }

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
