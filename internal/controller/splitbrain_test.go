package controller

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/election"
)

type recordedEvents struct{ reasons []string }

func (r *recordedEvents) Eventf(_, _ runtime.Object, _, reason, _, _ string, _ ...any) {
	r.reasons = append(r.reasons, reason)
}

func TestCheckSplitBrain(t *testing.T) {
	cases := []struct {
		name   string
		mine   election.LeaderInfo
		holder string
		epoch  int32
		alarm  bool
	}{
		{"we lead, the Lease names us", election.LeaderInfo{Leading: true, Epoch: 3}, "me", 3, false},
		{"we follow", election.LeaderInfo{Leading: false, Epoch: 3}, "other", 4, false},
		{"the informer lags behind our acquisition", election.LeaderInfo{Leading: true, Epoch: 3}, "other", 2, false},
		{"another holder at our epoch", election.LeaderInfo{Leading: true, Epoch: 3}, "other", 3, true},
		{"another holder at a later epoch", election.LeaderInfo{Leading: true, Epoch: 3}, "other", 5, true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			events := &recordedEvents{}
			r := &LeaderGroupReconciler{Identity: "me"}
			r.Recorder = events
			g := &v1alpha1.LeaderGroup{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: string(rune('a' + i))}}
			r.checkSplitBrain(g, tc.mine, lease(tc.holder, tc.epoch, 0))
			got := testutil.ToFloat64(splitBrain.WithLabelValues("ns", g.Name))
			if (got == 1) != tc.alarm || (len(events.reasons) == 1) != tc.alarm {
				t.Errorf("counter %v, events %v; want alarm %v", got, events.reasons, tc.alarm)
			}
		})
	}
}
