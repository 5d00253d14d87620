package supervisor

import (
	"strings"
	"testing"
	"time"
)

func TestBudget(t *testing.T) {
	b := Budget{LeaseDuration: 6 * time.Second, RenewDeadline: 3 * time.Second}
	if got, want := b.Margin(), 560*time.Millisecond; got != want {
		t.Errorf("margin %s, want %s", got, want)
	}
	if got, want := b.Grace(), 2440*time.Millisecond; got != want {
		t.Errorf("grace %s, want %s", got, want)
	}
	if got, want := b.Horizon(), 5440*time.Millisecond; got != want {
		t.Errorf("horizon %s, want %s", got, want)
	}
	b.GracePeriod = time.Second
	if got := b.Grace(); got != time.Second {
		t.Errorf("grace %s, want the configured 1s", got)
	}
}

func TestKillDeadline(t *testing.T) {
	t0 := time.Now()
	grace, horizon := 2440*time.Millisecond, 5440*time.Millisecond
	for _, tc := range []struct {
		name        string
		termAt      time.Time
		lastRenewal time.Time
		want        time.Time
	}{
		{"stop while leading: the grace period", t0, t0.Add(-500 * time.Millisecond), t0.Add(grace)},
		{"loss on time: the full grace period fits", t0.Add(3 * time.Second), t0, t0.Add(3*time.Second + grace)},
		{"late callback: the lease bounds it", t0.Add(4 * time.Second), t0, t0.Add(horizon)},
		{"past the bound: at once", t0.Add(6 * time.Second), t0, t0.Add(horizon)},
		{"no renewal known: the grace period", t0, time.Time{}, t0.Add(grace)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := KillDeadline(tc.termAt, tc.lastRenewal, grace, horizon); !got.Equal(tc.want) {
				t.Errorf("got %s after t0, want %s", got.Sub(t0), tc.want.Sub(t0))
			}
		})
	}
}

func TestBudgetValidate(t *testing.T) {
	names := Names{LeaseDuration: "--lease-duration", RenewDeadline: "--renew-deadline", SafetyMargin: "--safety-margin", GracePeriod: "--grace-period"}
	for _, tc := range []struct {
		name string
		b    Budget
		want []string // substrings; none: valid
	}{
		{"test timings", Budget{LeaseDuration: 6 * time.Second, RenewDeadline: 3 * time.Second}, nil},
		{"defaults", Budget{LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second}, nil},
		{"no room", Budget{LeaseDuration: 3 * time.Second, RenewDeadline: 2500 * time.Millisecond},
			[]string{"--lease-duration (3s) - --renew-deadline (2.5s) - safety margin (530ms, --safety-margin) = -30ms", "no time to stop"}},
		{"margin eats the room", Budget{LeaseDuration: 6 * time.Second, RenewDeadline: 3 * time.Second, SafetyMargin: 3 * time.Second},
			[]string{"= 0s leaves the child no time"}},
		{"grace too long", Budget{LeaseDuration: 6 * time.Second, RenewDeadline: 3 * time.Second, GracePeriod: 3 * time.Second},
			[]string{"--grace-period 3s: must be at most", "= 2.44s"}},
		{"negative margin", Budget{LeaseDuration: 6 * time.Second, RenewDeadline: 3 * time.Second, SafetyMargin: -time.Second},
			[]string{"--safety-margin -1s: must not be negative"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.b.Validate(names)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
