package podsource

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
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
		if got := choose(tc.pods, tc.holder, tc.preferred, true); got != tc.want {
			t.Errorf("%s: chose %q, want %q", tc.name, got, tc.want)
		}
	}
}

// rev makes p a pod of a workload's revision: owned by a ReplicaSet (kind "ReplicaSet",
// label pod-template-hash) or a StatefulSet (controller-revision-hash).
func rev(p corev1.Pod, kind, revision string) corev1.Pod {
	p.OwnerReferences = []metav1.OwnerReference{{Kind: kind, Name: "owner", Controller: ptr.To(true)}}
	label := map[string]string{"ReplicaSet": "pod-template-hash", "StatefulSet": "controller-revision-hash"}[kind]
	p.Labels = map[string]string{label: revision}
	return p
}

func TestChooseFollowsTheNewestRevision(t *testing.T) {
	rs := func(name string, age int, ready bool, revision string) corev1.Pod {
		return rev(pod(name, age, ready, false), "ReplicaSet", revision)
	}
	cases := []struct {
		name              string
		pods              []corev1.Pod
		holder, preferred string
		moveToNewest      bool
		want              string
	}{
		{"an old-revision holder moves to the oldest Ready pod of the newest revision",
			[]corev1.Pod{rs("old", 30, true, "v1"), rs("new-a", 5, true, "v2"), rs("new-b", 8, true, "v2"), rs("new-c", 1, false, "v2")}, "old", "", true, "new-b"},
		{"a newest-revision holder stays while older pods of that revision exist",
			[]corev1.Pod{rs("new-a", 5, true, "v2"), rs("new-b", 8, true, "v2")}, "new-a", "", true, "new-a"},
		{"no Ready pod of the newest revision: the old holder stays",
			[]corev1.Pod{rs("old", 30, true, "v1"), rs("new", 1, false, "v2")}, "old", "", true, "old"},
		{"turned off: a holder that can lead is never moved",
			[]corev1.Pod{rs("old", 30, true, "v1"), rs("new", 5, true, "v2")}, "old", "", false, "old"},
		{"turned off: a replacement still comes from the newest revision",
			[]corev1.Pod{rs("old", 30, true, "v1"), rs("older", 40, true, "v1"), rs("new", 5, true, "v2"), rs("going", 50, true, "v1")}, "gone", "", false, "new"},
		{"turned off: an old-revision replacement when no newest-revision pod can lead",
			[]corev1.Pod{rs("old", 30, true, "v1"), rs("older", 40, true, "v1"), rs("new", 5, false, "v2")}, "", "", false, "older"},
		{"with no holder, the newest revision first",
			[]corev1.Pod{rs("old", 30, true, "v1"), rs("new", 5, true, "v2")}, "", "", true, "new"},
		{"a rollback: the revision created last is the newest, whatever its name",
			[]corev1.Pod{rs("v2-pod", 30, true, "v2"), rs("v1-again", 2, true, "v1")}, "v2-pod", "", true, "v1-again"},
		{"terminating pods do not say which revision is newest",
			[]corev1.Pod{rs("old", 30, true, "v1"), rev(pod("going", 1, true, true), "ReplicaSet", "v3")}, "old", "", true, "old"},
		{"a StatefulSet's controller-revision-hash",
			[]corev1.Pod{rev(pod("s-0", 30, true, false), "StatefulSet", "r1"), rev(pod("s-1", 1, true, false), "StatefulSet", "r2")}, "s-0", "", true, "s-1"},
		{"pods of no workload have no revision: nothing moves",
			[]corev1.Pod{pod("a", 30, true, false), pod("b", 1, true, false)}, "a", "", true, "a"},
		{"the preferred holder comes before any revision",
			[]corev1.Pod{rs("old", 30, true, "v1"), rs("new", 5, true, "v2")}, "new", "old", true, "old"},
	}
	for _, tc := range cases {
		if got := choose(tc.pods, tc.holder, tc.preferred, tc.moveToNewest); got != tc.want {
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
