package podsource

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func pod(name string, ageSec int, ready bool, terminating bool) corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name,
		CreationTimestamp: metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Duration(ageSec) * time.Second))},
		Status: corev1.PodStatus{Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}}}
	if terminating {
		p.DeletionTimestamp = &metav1.Time{}
	}
	return p
}

func TestChoose(t *testing.T) {
	cases := []struct {
		name      string
		pods      []corev1.Pod
		holder    string
		want      string
		preferred string
	}{
		{"no pods", nil, "", "", ""},
		{"none ready", []corev1.Pod{pod("a", 10, false, false)}, "", "", ""},
		{"the oldest ready pod", []corev1.Pod{pod("young", 1, true, false), pod("old", 10, true, false), pod("older-unready", 20, false, false)}, "", "old", ""},
		{"ties broken by name", []corev1.Pod{pod("b", 5, true, false), pod("a", 5, true, false)}, "", "a", ""},
		{"a ready holder keeps it: no preemption", []corev1.Pod{pod("old", 10, true, false), pod("holder", 1, true, false)}, "holder", "holder", ""},
		{"an unready holder is replaced", []corev1.Pod{pod("holder", 10, false, false), pod("b", 1, true, false)}, "holder", "b", ""},
		{"a terminating holder is replaced", []corev1.Pod{pod("holder", 10, true, true), pod("b", 1, true, false)}, "holder", "b", ""},
		{"a deleted holder is replaced", []corev1.Pod{pod("b", 1, true, false)}, "gone", "b", ""},
		{"a Ready preferred pod takes over", []corev1.Pod{pod("holder", 10, true, false), pod("p", 1, true, false)}, "holder", "p", "p"},
		{"an unready preferred pod does not", []corev1.Pod{pod("holder", 10, true, false), pod("p", 1, false, false)}, "holder", "holder", "p"},
		{"a missing preferred pod does not", []corev1.Pod{pod("holder", 10, true, false)}, "holder", "holder", "gone"},
	}
	for _, tc := range cases {
		if got := choose(tc.pods, tc.holder, tc.preferred); got != tc.want {
			t.Errorf("%s: chose %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestCandidatesSortedWithReadiness(t *testing.T) {
	other := pod("d", 1, true, false)
	other.Labels = map[string]string{LabelLeader: "other-group"}
	mine := pod("e", 1, true, false)
	mine.Labels = map[string]string{LabelLeader: "g"}
	got := Candidates([]corev1.Pod{pod("c", 1, true, false), pod("a", 1, false, false), pod("b", 1, true, true), other, mine}, "g")
	want := "a:false b:false c:true d:false e:true"
	var s string
	for i, c := range got {
		if i > 0 {
			s += " "
		}
		s += c.Identity + ":" + map[bool]string{true: "true", false: "false"}[c.Ready]
	}
	if s != want {
		t.Errorf("candidates %s, want %s", s, want)
	}
}
