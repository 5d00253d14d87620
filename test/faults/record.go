// Package faults is the fault suite (make faults): a live system of managers, an
// elector group and a Pods group against a real kube-apiserver and etcd, a seeded
// schedule of faults injected into it, and a checker that reads what every party
// recorded — its own log of leading, its children's start and stop, watches of the
// Leases, the pods and the groups' status — never status alone.
//
// This file holds the records and how they are read from the parties' output; the
// checker (checker.go) is pure functions over them.
package faults

import (
	"bufio"
	"bytes"
	"encoding/json"
	"regexp"
	"time"
)

// Timings are a group's leaseDuration, renewDeadline and retryPeriod.
type Timings struct {
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

func (t Timings) String() string {
	return t.LeaseDuration.String() + "/" + t.RenewDeadline.String() + "/" + t.RetryPeriod.String()
}

// Source is a group's candidate source.
type Source string

const (
	Manager  Source = "Manager"
	Pods     Source = "Pods"
	External Source = "External"
)

// Group is a group under test.
type Group struct {
	Name   string
	Lease  string // namespace/name
	Source Source
	// Timings is every set of timings the group ran with.
	Timings []Timings
	// Recovery is how long the group may go without a leader once every fault has
	// ended: derived from its timings (and, for Pods, the manager lock's).
	Recovery time.Duration
}

// maxRenewDeadline is the longest renewDeadline the group ran with.
func (g Group) maxRenewDeadline() time.Duration {
	var d time.Duration
	for _, t := range g.Timings {
		d = max(d, t.RenewDeadline)
	}
	return d
}

func (g Group) maxRetryPeriod() time.Duration {
	var d time.Duration
	for _, t := range g.Timings {
		d = max(d, t.RetryPeriod)
	}
	return d
}

// Interval is a time a party said, in its own log, that it led a group's Lease.
type Interval struct {
	Group, Party string
	Epoch        int32
	Start, End   time.Time
	// Open: the log never said it stopped; End is when the process died (or the run
	// ended).
	Open bool
}

// Run is one life of an elector's child, from the child's own records.
type Run struct {
	Group, Holder string
	Epoch         int32
	Pid           int
	Start, End    time.Time // End zero: still alive at the end of the run
}

// Freeze is a time a process was stopped by SIGSTOP.
type Freeze struct {
	Party    string
	From, To time.Time
}

// LeaseVersion is one version of a group's Lease seen by the suite's watch.
type LeaseVersion struct {
	Group     string
	At        time.Time // when the watch saw it
	Deleted   bool
	UID       string
	Holder    string
	Epoch     int32
	RenewTime time.Time
	// StartReason is how the version says its holder began (leaserecord.Start),
	// EndReason how it says the term before it ended (leaserecord.EndOf): what a
	// status writer that saw this version may record.
	StartReason, EndReason string
}

// Term is a history entry of a group's status.
type Term struct {
	Holder      string
	Transition  int32
	StartReason string
	EndReason   string
}

// StatusVersion is one version of a group's status seen by the suite's watch.
type StatusVersion struct {
	Group       string
	At          time.Time
	Holder      string
	Transitions int32
	History     []Term // newest first
}

// LabelSample is how many pods carried a group's leader label, from the moment the
// pod watch saw it.
type LabelSample struct {
	Group string // the label's value
	At    time.Time
	Pods  []string
	// Serving are those of Pods that are Ready and not terminating: a Service sends
	// them new requests.
	Serving []string
}

// Fault is one injected fault.
type Fault struct {
	Kind   string
	Target string
	// Start is when it was injected, End when it was healed: for control-plane
	// faults, when the API server answered again.
	Start, End time.Time
	// ControlPlane faults add their duration to the recovery bound.
	ControlPlane bool
}

// Records is everything the checker reads.
type Records struct {
	Groups    []Group
	Intervals []Interval
	Runs      []Run
	Freezes   []Freeze
	Leases    []LeaseVersion
	Statuses  []StatusVersion
	Labels    []LabelSample
	Faults    []Fault
	// Problems found while running: panics in a process's output, leaks.
	Problems []Violation
	// End is when the run ended: the processes began to stop (what they did after
	// is checked for safety, but gaps in leadership after it are no fault's).
	End time.Time
	// Slack is added to every bound: a loaded machine schedules late.
	Slack time.Duration
}

// ParseIntervals reads a process's leading intervals from its log (zap JSON lines
// with RFC 3339 timestamps): "Leading" or "Started leading" opens one for the lease,
// "Stopped leading" closes it. leases maps the groups' Leases (namespace/name) to
// their group; other Leases (the manager's lock, presence) are not groups'. A log
// that ends while leading leaves the interval open until diedAt.
func ParseIntervals(party string, log []byte, leases map[string]string, diedAt time.Time) []Interval {
	var out []Interval
	open := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		text := sc.Bytes()
		if !bytes.Contains(text, []byte(`leading"`)) && !bytes.Contains(text, []byte(`"msg":"Leading"`)) {
			continue
		}
		var line struct {
			TS    string `json:"ts"`
			Msg   string `json:"msg"`
			Lease string `json:"lease"`
			Epoch int32  `json:"epoch"`
		}
		if err := json.Unmarshal(text, &line); err != nil {
			continue
		}
		group, ok := leases[line.Lease]
		if !ok {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, line.TS)
		if err != nil {
			continue
		}
		switch line.Msg {
		case "Leading", "Started leading":
			if _, ok := open[group]; !ok {
				open[group] = len(out)
				out = append(out, Interval{Group: group, Party: party, Epoch: line.Epoch, Start: ts})
			}
		case "Stopped leading":
			if i, ok := open[group]; ok {
				out[i].End = ts
				delete(open, group)
			}
		}
	}
	for _, i := range open {
		out[i].End, out[i].Open = diedAt, true
	}
	return out
}

var panicLine = regexp.MustCompile(`(?m)^(panic: |fatal error: |WARNING: DATA RACE).*$`)

// FindPanics returns the lines of a process's output that say it panicked.
func FindPanics(output []byte) []string {
	var out []string
	for _, m := range panicLine.FindAll(output, -1) {
		out = append(out, string(m))
	}
	return out
}
