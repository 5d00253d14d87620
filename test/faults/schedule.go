package faults

import (
	"math/rand"
	"strings"
	"time"
)

// Step is one planned fault: its kind, how long it lasts, which target it picks
// (an index the fault reduces modulo its candidates), whether the system is first
// left to recover from the faults before, and how long after starting it the next
// step begins (so that faults overlap when the gap is shorter than this one).
type Step struct {
	Kind     string
	Duration time.Duration
	Pick     int
	Settle   bool
	Gap      time.Duration
}

// Only returns the kinds named (comma-separated), for a run that tries a few.
func Only(names string) []Kind {
	var out []Kind
	for _, k := range Kinds {
		if strings.Contains(","+names+",", ","+k.kind+",") {
			out = append(out, k)
		}
	}
	return out
}

// Kind is a fault kind, how often the schedule draws it, and how long it lasts.
type Kind struct {
	kind   string
	weight int
	// min, max bound its duration.
	min, max time.Duration
}

// Kinds is every fault kind the schedule draws from, with its weight and duration.
// A manager or elector SIGSTOP lasts longer than every group's renewDeadline but
// the default group's, so that its own deadline has passed when it resumes.
var Kinds = []Kind{
	{"cut-refuse", 6, 2 * time.Second, 7 * time.Second},
	{"cut-blackhole", 6, 2 * time.Second, 7 * time.Second},
	{"cut-response-lost", 6, 2 * time.Second, 7 * time.Second},
	{"apiserver-kill", 3, time.Second, 3 * time.Second},
	{"apiserver-stop", 3, time.Second, 5 * time.Second},
	{"etcd-kill", 3, time.Second, 3 * time.Second},
	{"etcd-stop", 3, time.Second, 5 * time.Second},
	{"manager-kill", 5, 0, 3 * time.Second},
	{"manager-term", 4, 0, 3 * time.Second},
	{"manager-stop", 4, 7 * time.Second, 9 * time.Second},
	{"elector-kill", 4, 0, 3 * time.Second},
	{"elector-term", 3, 0, 3 * time.Second},
	{"elector-stop", 3, 7 * time.Second, 9 * time.Second},
	{"rolling-restart", 2, 0, 0},
	{"lease-delete", 4, 0, 0},
	{"lease-hijack", 4, 0, 0},
	{"timings-shorter", 2, 2 * time.Second, 6 * time.Second},
	{"timings-longer", 2, 2 * time.Second, 6 * time.Second},
	{"preferred-holder", 4, 2 * time.Second, 6 * time.Second},
	{"suspend", 3, time.Second, 5 * time.Second},
	{"pod-unready", 6, time.Second, 5 * time.Second},
	{"writer-kill-mid-switch", 3, 0, 2 * time.Second},
}

// Plan draws n steps from seed: the same seed gives the same plan.
func Plan(seed int64, n int) []Step { return PlanOf(seed, n, Kinds) }

// PlanOf draws n steps of the given kinds only.
func PlanOf(seed int64, n int, kinds []Kind) []Step {
	rnd := rand.New(rand.NewSource(seed))
	total := 0
	for _, k := range kinds {
		total += k.weight
	}
	steps := make([]Step, 0, n)
	for range n {
		w := rnd.Intn(total)
		k := kinds[0]
		for _, c := range kinds {
			if w < c.weight {
				k = c
				break
			}
			w -= c.weight
		}
		d := k.min
		if k.max > k.min {
			d += time.Duration(rnd.Int63n(int64(k.max - k.min)))
		}
		steps = append(steps, Step{
			Kind:     k.kind,
			Duration: d.Round(10 * time.Millisecond),
			Pick:     rnd.Intn(1 << 20),
			// A third of the time the system recovers first; otherwise the next fault
			// comes after 0.2 to 3s, often while this one lasts.
			Settle: rnd.Intn(3) == 0,
			Gap:    200*time.Millisecond + time.Duration(rnd.Int63n(int64(2800*time.Millisecond))).Round(10*time.Millisecond),
		})
	}
	return steps
}
