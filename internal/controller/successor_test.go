package controller

import (
	"fmt"
	"testing"
)

// The successor is never the one leaving, the same for everyone who asks, spread
// evenly, and unchanged when a candidate it did not pick leaves.
func TestRendezvousPicksASuccessor(t *testing.T) {
	ids := []string{"m0", "m1", "m2", "m3"}
	picked := map[string]int{}
	const groups = 4000
	for i := range groups {
		key := fmt.Sprintf("ns/g-%d", i)
		s := rendezvous(key, "m0", ids)
		if s == "m0" || s == "" {
			t.Fatalf("%s: successor %q after m0 leaves", key, s)
		}
		if again := rendezvous(key, "m0", []string{"m3", "m2", "m1", "m0"}); again != s {
			t.Fatalf("%s: %s, or %s with the candidates in another order", key, s, again)
		}
		for _, gone := range ids[1:] {
			if gone == s {
				continue
			}
			var left []string
			for _, id := range ids {
				if id != gone {
					left = append(left, id)
				}
			}
			if again := rendezvous(key, "m0", left); again != s {
				t.Fatalf("%s: the pick %s became %s when %s left", key, s, again, gone)
			}
		}
		picked[s]++
	}
	for _, id := range ids[1:] {
		if share := float64(picked[id]) / groups; share < 0.30 || share > 0.37 {
			t.Errorf("%s is the successor of %.0f%% of the groups, want about a third", id, 100*share)
		}
	}
	if got := rendezvous("ns/g", "m0", []string{"m0"}); got != "" {
		t.Errorf("the only candidate leaving: successor %q, want none", got)
	}
}
