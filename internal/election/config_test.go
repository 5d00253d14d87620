package election

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/election-manager/election-manager/internal/leaserecord"
)

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		return Config{
			Lease:         types.NamespacedName{Namespace: "default", Name: "lock"},
			Identity:      "a",
			LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
		}
	}
	tests := []struct {
		name   string
		change func(*Config)
		want   []string // substrings of the error; none: valid
	}{
		{"defaults of core clients", func(*Config) {}, nil},
		{"short test timings", func(c *Config) {
			c.LeaseDuration, c.RenewDeadline, c.RetryPeriod = 3*time.Second, 2*time.Second, 500*time.Millisecond
		}, nil},
		{"no lease name", func(c *Config) { c.Lease.Name = "" }, []string{"lease.name"}},
		{"no lease namespace", func(c *Config) { c.Lease.Namespace = "" }, []string{"lease.namespace"}},
		{"node lease namespace", func(c *Config) { c.Lease.Namespace = NodeLeaseNamespace }, []string{"lease.namespace", "node heartbeats"}},
		{"no identity", func(c *Config) { c.Identity = "" }, []string{"identity"}},
		{"the elector's own annotation", func(c *Config) { c.Annotations = map[string]string{leaserecord.AnnotationAcquiredHow: "x"} },
			[]string{"annotations: " + leaserecord.AnnotationAcquiredHow}},
		{"other annotations", func(c *Config) { c.Annotations = map[string]string{"example.com/x": "y"} }, nil},
		{"zero retry period", func(c *Config) { c.RetryPeriod = 0 }, []string{"retryPeriod 0s: must be greater than 0"}},
		{"negative renew deadline", func(c *Config) { c.RenewDeadline = -time.Second }, []string{"renewDeadline -1s: must be greater than 0"}},
		{"zero lease duration", func(c *Config) { c.LeaseDuration = 0 }, []string{"leaseDuration 0s: must be at least 1s"}},
		{"fractional lease duration", func(c *Config) { c.LeaseDuration = 15500 * time.Millisecond }, []string{"leaseDuration 15.5s: must be whole seconds"}},
		{"sub-second lease duration", func(c *Config) {
			c.LeaseDuration, c.RenewDeadline, c.RetryPeriod = 500*time.Millisecond, 300*time.Millisecond, 100*time.Millisecond
		}, []string{"leaseDuration 500ms: must be at least 1s"}},
		{"lease duration equal to renew deadline", func(c *Config) { c.RenewDeadline = 15 * time.Second }, []string{"leaseDuration 15s: must be greater than renewDeadline + retryPeriod"}},
		{"renew deadline within jitter of retry period", func(c *Config) { c.RetryPeriod = 9 * time.Second }, []string{"renewDeadline 10s: must be greater than 1.2 × retryPeriod"}},
		{"lease duration not above renew deadline + retry period", func(c *Config) { c.LeaseDuration = 12 * time.Second }, []string{"leaseDuration 12s: must be greater than renewDeadline + retryPeriod (12s)"}},
		{"renew deadline exactly 1.2 retry periods", func(c *Config) {
			c.LeaseDuration = 30 * time.Second
			c.RenewDeadline = 12 * time.Second
			c.RetryPeriod = 10 * time.Second
		}, []string{"renewDeadline 12s: must be greater than 1.2 × retryPeriod"}},
		{"several errors at once", func(c *Config) { c.Identity = ""; c.Lease.Name = "" }, []string{"identity", "lease.name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.change(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestConfigCloneIsDeep(t *testing.T) {
	c := Config{Labels: map[string]string{"a": "1"}}
	cl := c.clone()
	c.Labels["a"] = "2"
	if cl.Labels["a"] != "1" {
		t.Errorf("clone shares its labels with the original")
	}
}
