package controller

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/election-manager/election-manager/api/v1alpha1"
)

// Metrics of elections. Group metrics come from the status writer (the observer);
// is_leader comes from every instance about its own electors.
var (
	groupHasLeader = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "election_manager_group_has_leader",
		Help: "1 while the group's Lease has a valid holder, as the status writer observes it.",
	}, []string{"namespace", "leadergroup"})
	groupTransitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "election_manager_group_transitions_total",
		Help: "Terms the status writer has seen begin in the group.",
	}, []string{"namespace", "leadergroup"})
	leaderlessSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "election_manager_leaderless_seconds",
		Help:    "How long groups had no leader before a term began, when known.",
		Buckets: []float64{0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 15, 30, 60, 120},
	}, []string{"namespace", "leadergroup"})
	isLeader = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "election_manager_is_leader",
		Help: "1 while this instance's own elector leads the group.",
	}, []string{"namespace", "leadergroup"})
	splitBrain = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "election_manager_split_brain_total",
		Help: "Times this instance saw two identities claim one group at once.",
	}, []string{"namespace", "leadergroup"})
	leaseTrackerEntries = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "election_manager_lease_tracker_entries",
		Help: "Leases this process remembers: records (existing Leases) and tombstones (recently deleted ones).",
	}, []string{"state"})
	renewalsSpacedOut = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "election_manager_renewals_spaced_out",
		Help: "1 while this instance spaces its electors' renewals out because the API server answers slowly; status writes then take turns.",
	})
	statusWritesWaiting = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "election_manager_status_writes_waiting",
		Help: "Groups whose status change waits for its turn while the API server is strained.",
	})
	// StatusWriter is 1 while this instance holds the manager's own lock.
	StatusWriter = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "election_manager_status_writer",
		Help: "1 while this instance holds the manager's lock and writes status.",
	})
)

func init() {
	metrics.Registry.MustRegister(groupHasLeader, groupTransitions, leaderlessSeconds, isLeader, splitBrain, leaseTrackerEntries, renewalsSpacedOut, statusWritesWaiting, StatusWriter)
}

// recordGroupMetrics updates the observer's metrics from a status change.
func recordGroupMetrics(g *v1alpha1.LeaderGroup, prev, next v1alpha1.LeaderGroupStatus) {
	labels := prometheus.Labels{"namespace": g.Namespace, "leadergroup": g.Name}
	hasLeader := 0.0
	if next.Holder != "" {
		hasLeader = 1
	}
	groupHasLeader.With(labels).Set(hasLeader)
	for _, e := range newTerms(prev.History, next.History) {
		groupTransitions.With(labels).Inc()
		if e.LeaderlessFor != nil {
			leaderlessSeconds.With(labels).Observe(e.LeaderlessFor.Seconds())
		}
	}
}

// newTerms are the entries of next that prev does not have.
func newTerms(prev, next []v1alpha1.HistoryEntry) []v1alpha1.HistoryEntry {
	var out []v1alpha1.HistoryEntry
	for _, e := range next {
		if len(prev) > 0 && e.Holder == prev[0].Holder && e.Transition == prev[0].Transition {
			break
		}
		out = append(out, e)
	}
	return out
}

// forgetGroupMetrics drops a deleted group's series.
func forgetGroupMetrics(namespace, name string) {
	labels := prometheus.Labels{"namespace": namespace, "leadergroup": name}
	for _, vec := range []*prometheus.MetricVec{groupHasLeader.MetricVec, groupTransitions.MetricVec,
		leaderlessSeconds.MetricVec, isLeader.MetricVec, splitBrain.MetricVec} {
		vec.Delete(labels)
	}
}
