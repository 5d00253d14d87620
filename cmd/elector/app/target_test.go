package app

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/groups"
)

func group(edit func(*v1alpha1.LeaderGroup)) *v1alpha1.LeaderGroup {
	g := &v1alpha1.LeaderGroup{ObjectMeta: metav1.ObjectMeta{Name: "g", Namespace: "ns"}}
	g.Spec.LeaseDuration = metav1.Duration{Duration: 15 * time.Second}
	g.Spec.RenewDeadline = metav1.Duration{Duration: 10 * time.Second}
	g.Spec.RetryPeriod = metav1.Duration{Duration: 2 * time.Second}
	g.Spec.Candidates.Source = v1alpha1.SourceExternal
	if edit != nil {
		edit(g)
	}
	return g
}

// served is how a manager's status shows a group it serves as it now is.
func served(g *v1alpha1.LeaderGroup) {
	g.Generation, g.Status.ObservedGeneration, g.Status.Lease = 2, 2, groups.Lease(g).String()
	g.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonReconciled}}
}

func TestElectorTargetOfAGroup(t *testing.T) {
	tg, err := targetOf(group(nil))
	if err != nil {
		t.Fatal(err)
	}
	if tg.lease.String() != "ns/g" || !tg.releaseOnCancel || tg.leaseDuration != 15*time.Second || tg.groupString() != "ns/g" {
		t.Errorf("target %+v: want the group's own name and namespace, its timings, release on cancel", tg)
	}
	if cfg := tg.electorConfig("e", nil); cfg.KeepEpoch || cfg.Labels != nil {
		t.Errorf("elector config %+v: a group no manager serves yet (no status) keeps no epoch", cfg)
	}
	tg, err = targetOf(group(served))
	if err != nil {
		t.Fatal(err)
	}
	if cfg := tg.electorConfig("e", nil); !cfg.KeepEpoch || cfg.Labels[groups.LabelGroup] != "g" {
		t.Errorf("elector config %+v: want the served group's Lease kept and labelled with the group", cfg)
	}
	tg, err = targetOf(group(func(g *v1alpha1.LeaderGroup) {
		served(g)
		g.Spec.Lease = &v1alpha1.LeaseReference{Name: "lock", Namespace: "other"}
		g.Spec.ReleaseOnCancel = ptr.To(false)
	}))
	if err != nil {
		t.Fatal(err)
	}
	if tg.lease.String() != "other/lock" || tg.releaseOnCancel {
		t.Errorf("target %+v: want other/lock without release", tg)
	}
	if cfg := tg.electorConfig("e", nil); cfg.KeepEpoch || cfg.Labels != nil {
		t.Errorf("elector config %+v: a Lease in another namespace is neither kept nor labelled: the status writer may only read it", cfg)
	}
	for source, want := range map[v1alpha1.CandidateSource]string{
		v1alpha1.SourceManager: "group ns/g is of source Manager: its electors are the managers; use source External",
		"":                     "group ns/g is of source Manager",
		v1alpha1.SourcePods:    "group ns/g is of source Pods: the manager elects among its pods; use source External",
	} {
		_, err := targetOf(group(func(g *v1alpha1.LeaderGroup) { g.Spec.Candidates.Source = source }))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("source %q: error %v, want %q", source, err, want)
		}
	}
	_, err = targetOf(group(func(g *v1alpha1.LeaderGroup) { g.Spec.RenewDeadline.Duration = 20 * time.Second }))
	if err == nil || !strings.Contains(err.Error(), "LeaderGroup ns/g: spec.leaseDuration 15s: must be greater than spec.renewDeadline + spec.retryPeriod") {
		t.Errorf("unsafe timings: %v", err)
	}
}
