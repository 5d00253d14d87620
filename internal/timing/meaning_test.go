package timing

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// The README's table of what the default timings mean is checked against
// Meaning, the formulas the code uses, not against numbers copied into a test.
func TestTheREADMEExplainsTheDefaultTimings(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	readme, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defaults := Timings{LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}
	for _, f := range defaults.Meaning() {
		row := "| " + f.What + " | " + f.Format() + " |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README.md lacks the row %q", row)
		}
	}
}

func TestMeaningFollowsTheRules(t *testing.T) {
	tm := Timings{LeaseDuration: 6 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: time.Second}
	got := map[string]Fact{}
	for _, f := range tm.Meaning() {
		got[f.What] = f
	}
	if f := got["API-server outage a leader always survives"]; f.Value != 2*time.Second {
		t.Errorf("outage survived %s, want renewDeadline − retryPeriod = 2s", f.Value)
	}
	if f := got["clock-rate difference tolerated between candidates"]; f.Format() != "100%" {
		t.Errorf("clock-rate tolerance %s, want 100%% (6s/3s − 1)", f.Format())
	}
}
