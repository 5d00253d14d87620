package faults

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Row is one line of the report: a fault kind, how many were injected, the slowest
// recovery of a burst that held one, and the violations found while one was active
// or its burst recovering.
type Row struct {
	Kind       string
	Count      int
	Slowest    time.Duration
	Group      string        // the group that took it
	Bound      time.Duration // that group's bound in that burst
	Violations int
}

// Table sums the result up by fault kind. Violations found outside any burst go on
// a row of their own, "(between faults)".
func Table(r Records, res Result) []Row {
	rows := map[string]*Row{}
	row := func(kind string) *Row {
		if rows[kind] == nil {
			rows[kind] = &Row{Kind: kind}
		}
		return rows[kind]
	}
	for _, f := range r.Faults {
		row(f.Kind).Count++
	}
	type window struct {
		from, to time.Time
		kinds    map[string]bool
	}
	var windows []window
	for _, rec := range res.Recoveries {
		w := window{from: rec.From, to: rec.From.Add(rec.Took), kinds: map[string]bool{}}
		for _, i := range rec.Faults {
			f := r.Faults[i]
			w.kinds[f.Kind] = true
			if f.Start.Before(w.from) {
				w.from = f.Start
			}
			if k := row(f.Kind); rec.Took > k.Slowest || k.Bound == 0 {
				k.Slowest, k.Group, k.Bound = rec.Took, rec.Slowest, rec.Bound
			}
		}
		windows = append(windows, w)
	}
	for _, v := range res.Violations {
		found := false
		for _, w := range windows {
			if !v.At.Before(w.from) && !v.At.After(w.to) {
				for k := range w.kinds {
					row(k).Violations++
				}
				found = true
			}
		}
		if !found {
			row("(between faults)").Violations++
		}
	}
	out := make([]Row, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out
}

// Format renders the table as Markdown; violations is the total (a violation
// during a burst counts on the row of each kind in it).
func Format(rows []Row, violations int) string {
	var b strings.Builder
	b.WriteString("| fault | count | slowest recovery (group) | its bound | violations |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: |\n")
	var total int
	for _, r := range rows {
		slowest := r.Slowest.Round(10 * time.Millisecond).String()
		if r.Slowest > 0 {
			slowest += " (" + r.Group + ")"
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %d |\n", r.Kind, r.Count, slowest, r.Bound.Round(time.Second), r.Violations)
		total += r.Count
	}
	fmt.Fprintf(&b, "| **all** | %d | | | %d |\n", total, violations)
	return b.String()
}
