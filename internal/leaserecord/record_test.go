package leaserecord

import (
	"reflect"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/election-manager/election-manager/api/v1alpha1"
)

var (
	t0  = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	key = types.NamespacedName{Namespace: "ns", Name: "lock"}
)

func writer(id string) Writer {
	return Writer{Identity: id, LeaseDuration: 15 * time.Second, Labels: map[string]string{"app": "x"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: "u"}}}
}

// stored is l as the API server would return it: with a resourceVersion.
func stored(l *coordinationv1.Lease, rv string) *coordinationv1.Lease {
	l = l.DeepCopy()
	l.ResourceVersion = rv
	return l
}

// TestEveryWriteDecodes is the round trip: each way a term begins and ends, as
// written by the elector's and the Pods source's writes, reads back as that start
// and end reason, with the releaser's own time where it wrote one.
func TestEveryWriteDecodes(t *testing.T) {
	created := stored(Create(key, writer("a"), t0, 1), "1")
	renewed := stored(Renew(created, writer("a"), t0.Add(time.Second)), "2")
	tests := []struct {
		name      string
		next      *coordinationv1.Lease // the first record without a's term
		wantStart v1alpha1.StartReason  // of next's term, when it has a holder
		wantEnd   v1alpha1.EndReason    // of a's term
		wantAt    time.Time             // zero: the record does not say
	}{
		{"released", Release(renewed, "a", t0.Add(2*time.Second)), "", v1alpha1.EndReleased, t0.Add(2 * time.Second)},
		{"handed over", HandOver(renewed, "a", "b", "", t0.Add(2*time.Second), 6*time.Second), "", v1alpha1.EndHandover, t0.Add(2 * time.Second)},
		{"released, then acquired", Acquire(stored(Release(renewed, "a", t0.Add(2*time.Second)), "3"), writer("b"), t0.Add(3*time.Second), AfterRelease, 0),
			v1alpha1.StartAfterRelease, v1alpha1.EndReleased, t0.Add(2 * time.Second)},
		{"handed over, then taken", Acquire(stored(HandOver(renewed, "a", "b", "", t0.Add(2*time.Second), 6*time.Second), "3"), writer("b"), t0.Add(3*time.Second), Handover, 0),
			v1alpha1.StartHandover, v1alpha1.EndHandover, t0.Add(2 * time.Second)},
		{"expired, taken over", Acquire(renewed, writer("b"), t0.Add(20*time.Second), AfterExpiry, 0),
			v1alpha1.StartAfterExpiry, v1alpha1.EndExpired, time.Time{}},
		{"the same identity again after a loss", Acquire(renewed, writer("a"), t0.Add(20*time.Second), AfterExpiry, 0),
			v1alpha1.StartAfterExpiry, v1alpha1.EndExpired, time.Time{}},
		{"handed over but taken by another after the reservation", Acquire(stored(HandOver(renewed, "a", "b", "", t0.Add(2*time.Second), 6*time.Second), "3"), writer("c"), t0.Add(9*time.Second), AfterRelease, 0),
			v1alpha1.StartAfterRelease, v1alpha1.EndReleased, t0.Add(2 * time.Second)},
		{"deleted", nil, "", v1alpha1.EndUnknown, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.next != nil && Holder(tt.next) != "" {
				if got := Start(tt.next); got != tt.wantStart {
					t.Errorf("Start = %s, want %s", got, tt.wantStart)
				}
				if Epoch(tt.next) != Epoch(renewed)+1 {
					t.Errorf("epoch %d after %d: every acquisition adds one", Epoch(tt.next), Epoch(renewed))
				}
				if HandedOverTo(tt.next) != "" || tt.next.Annotations[AnnotationHandoverTo] != "" {
					t.Errorf("a taken Lease still carries handover-to %q", tt.next.Annotations[AnnotationHandoverTo])
				}
			}
			end := EndOf("a", tt.next)
			if end.Reason != tt.wantEnd || !end.At.Equal(tt.wantAt) {
				t.Errorf("EndOf(a) = %s at %v, want %s at %v", end.Reason, end.At, tt.wantEnd, tt.wantAt)
			}
		})
	}
	if got := Start(created); got != v1alpha1.StartElected {
		t.Errorf("Start(created) = %s, want Elected", got)
	}
	if got := Start(renewed); got != v1alpha1.StartElected {
		t.Errorf("a renewal changed how the term started: %s", got)
	}
}

func TestCreate(t *testing.T) {
	l := Create(key, writer("a"), t0, 7)
	switch {
	case Holder(l) != "a" || Epoch(l) != 7:
		t.Errorf("holder %q epoch %d, want a 7", Holder(l), Epoch(l))
	case *l.Spec.LeaseDurationSeconds != 15:
		t.Errorf("leaseDurationSeconds %d, want 15", *l.Spec.LeaseDurationSeconds)
	case !l.Spec.AcquireTime.Time.Equal(t0) || !l.Spec.RenewTime.Time.Equal(t0):
		t.Errorf("acquire/renew time %v/%v, want %v", l.Spec.AcquireTime, l.Spec.RenewTime, t0)
	case l.Labels["app"] != "x" || len(l.OwnerReferences) != 1 || l.Namespace != "ns" || l.Name != "lock":
		t.Errorf("metadata %+v", l.ObjectMeta)
	}
}

func TestAcquireKeepsOnlyWhatDescribesThisTransition(t *testing.T) {
	cur := stored(Release(stored(Create(key, writer("b"), t0, 4), "1"), "b", t0), "7")
	before := cur.DeepCopy()
	l := Acquire(cur, writer("a"), t0.Add(time.Second), AfterRelease, 0)
	if l.ResourceVersion != "7" {
		t.Errorf("resourceVersion %q: the write must be guarded by the version read", l.ResourceVersion)
	}
	if l.Annotations[AnnotationReleasedBy] != "b" {
		t.Errorf("after a release the release annotations must stay: %v", l.Annotations)
	}
	if *l.Spec.LeaseDurationSeconds != 15 || !l.Spec.AcquireTime.Time.Equal(t0.Add(time.Second)) {
		t.Errorf("spec not set: %+v", l.Spec)
	}
	if !SameRecord(before, cur) || len(before.Annotations) != len(cur.Annotations) {
		t.Errorf("the input was modified")
	}
	expired := Acquire(l, writer("c"), t0.Add(time.Minute), AfterExpiry, 0)
	if _, kept := expired.Annotations[AnnotationReleasedBy]; kept {
		t.Errorf("after an expiry the older release annotations must go: %v", expired.Annotations)
	}
}

func TestRenewKeepsTheTerm(t *testing.T) {
	own := stored(Create(key, writer("a"), t0, 4), "9")
	own.Labels["other"] = "kept"
	w := writer("a")
	w.LeaseDuration = 20 * time.Second
	l := Renew(own, w, t0.Add(time.Second))
	if Epoch(l) != 4 || Holder(l) != "a" || !l.Spec.AcquireTime.Equal(own.Spec.AcquireTime) || Start(l) != v1alpha1.StartElected {
		t.Errorf("a renewal changed the term: %+v", l.Spec)
	}
	if !l.Spec.RenewTime.Time.Equal(t0.Add(time.Second)) || *l.Spec.LeaseDurationSeconds != 20 {
		t.Errorf("renewTime %v duration %d: new timings apply at the next renewal", l.Spec.RenewTime, *l.Spec.LeaseDurationSeconds)
	}
	if l.Labels["other"] != "kept" || l.ResourceVersion != "9" {
		t.Errorf("metadata or version not kept: %v %q", l.Labels, l.ResourceVersion)
	}
}

func TestReleaseAndHandOverDurations(t *testing.T) {
	own := stored(Create(key, writer("a"), t0, 4), "9")
	r := Release(own, "a", t0)
	if Holder(r) != "" || Epoch(r) != 4 || *r.Spec.LeaseDurationSeconds != 1 || TakeoverHow(r) != AfterRelease {
		t.Errorf("release: %+v (how %s)", r.Spec, TakeoverHow(r))
	}
	if _, ok := r.Annotations[AnnotationAcquiredHow]; ok {
		t.Errorf("acquired-how kept on a released Lease")
	}
	h := HandOver(own, "a", "b", "", t0, 6*time.Second)
	if HandedOverTo(h) != "b" || *h.Spec.LeaseDurationSeconds != 6 {
		t.Errorf("handover: to %q duration %d, want b 6 (the reservation)", HandedOverTo(h), *h.Spec.LeaseDurationSeconds)
	}
	if HandedOverTo(Release(stored(h, "10"), "a", t0)) != "" {
		t.Errorf("a plain release kept an older handover reservation")
	}
}

func TestDurationHasOneMeaningForAMissingValue(t *testing.T) {
	l := Create(key, writer("a"), t0, 1)
	l.Spec.LeaseDurationSeconds = nil
	if got := Duration(l, 15*time.Second); got != 15*time.Second {
		t.Errorf("Duration(no value) = %s, want the election's own 15s", got)
	}
	zero := int32(0)
	l.Spec.LeaseDurationSeconds = &zero
	if got := Duration(l, 15*time.Second); got != 15*time.Second {
		t.Errorf("Duration(0) = %s, want the election's own 15s", got)
	}
}

func TestNamesAndNeverHeld(t *testing.T) {
	l := Create(key, writer("a"), t0, 4)
	if !Names(l, "a", 4) || Names(l, "a", 5) || Names(l, "b", 4) || Names(nil, "a", 4) {
		t.Errorf("Names does not identify the term (identity, epoch)")
	}
	if !NeverHeld(&coordinationv1.Lease{}) || NeverHeld(Release(l, "a", t0)) {
		t.Errorf("NeverHeld confuses an empty Lease with a released one")
	}
}

func TestAcquireStartsAboveTheKnownEpochs(t *testing.T) {
	recreated := stored(&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "lock"}}, "1")
	if l := Acquire(recreated, writer("a"), t0, Elected, 7); Epoch(l) != 8 {
		t.Errorf("a Lease re-created empty, acquired above 7: epoch %d, want 8", Epoch(l))
	}
	held := stored(Create(key, writer("b"), t0, 9), "2")
	if l := Acquire(held, writer("a"), t0, AfterExpiry, 7); Epoch(l) != 10 {
		t.Errorf("acquired at 9 above 7: epoch %d, want 10", Epoch(l))
	}
}

// TestHandoverLapseIsRemembered: a Lease reserved for b and taken by another
// records that the handover to b lapsed under its attempt; the record keeps saying
// so through renewals, releases and expiries (any term), and forgets it only with
// the next handover, or when b takes it.
func TestHandoverLapseIsRemembered(t *testing.T) {
	own := stored(Create(key, writer("a"), t0, 1), "1")
	handed := stored(HandOver(own, "a", "b", "gen-1", t0, 3*time.Second), "2")
	lapsed := stored(Acquire(handed, writer("c"), t0.Add(3*time.Second), AfterRelease, 0), "3")
	renewed := stored(Renew(lapsed, writer("c"), t0.Add(4*time.Second)), "4")
	released := stored(Release(renewed, "c", t0.Add(5*time.Second)), "5")
	afterRelease := stored(Acquire(released, writer("a"), t0.Add(6*time.Second), AfterRelease, 0), "6")
	afterExpiry := stored(Acquire(afterRelease, writer("c"), t0.Add(30*time.Second), AfterExpiry, 0), "7")
	again := stored(HandOver(afterExpiry, "c", "b", "gen-2", t0.Add(31*time.Second), 3*time.Second), "8")
	taken := stored(Acquire(handed, writer("b"), t0.Add(time.Second), Handover, 0), "3")
	tests := []struct {
		name    string
		l       *coordinationv1.Lease
		to      string
		attempt string
		want    bool
	}{
		{"while reserved, nothing lapsed yet", handed, "b", "gen-1", false},
		{"taken by another: lapsed", lapsed, "b", "gen-1", true},
		{"only for that attempt", lapsed, "b", "gen-2", false},
		{"only for that identity", lapsed, "c", "gen-1", false},
		{"kept by a renewal", renewed, "b", "gen-1", true},
		{"kept by a release", released, "b", "gen-1", true},
		{"kept into the next term", afterRelease, "b", "gen-1", true},
		{"kept after an expiry", afterExpiry, "b", "gen-1", true},
		{"forgotten by the next handover", again, "b", "gen-1", false},
		{"the target took it: nothing lapsed", taken, "b", "gen-1", false},
		{"no identity", lapsed, "", "gen-1", false},
		{"no record", nil, "b", "gen-1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HandoverLapsed(tt.l, tt.to, tt.attempt); got != tt.want {
				t.Errorf("HandoverLapsed(%s, %s) = %t, want %t (annotations %v)", tt.to, tt.attempt, got, tt.want, tt.l.GetAnnotations())
			}
		})
	}
	if taken.Annotations[AnnotationHandoverAttempt] != "" || taken.Annotations[AnnotationHandoverLapsed] != "" {
		t.Errorf("a handover taken by its target left %v", taken.Annotations)
	}
	if Start(lapsed) != v1alpha1.StartAfterRelease || HandedOverTo(lapsed) != "" {
		t.Errorf("the term after a lapse: start %s, handover-to %q; want AfterRelease, none", Start(lapsed), HandedOverTo(lapsed))
	}
}

// SameRecord compares every field of the election record, and only those: a
// change to any one of them is a sign of life, metadata is not, and two instants
// written differently are the same.
func TestSameRecordComparesEveryFieldOfTheRecord(t *testing.T) {
	base := func() *coordinationv1.Lease {
		at := metav1.NewMicroTime(t0)
		strategy := coordinationv1.OldestEmulationVersion
		return &coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("a"), LeaseDurationSeconds: ptr.To(int32(15)),
			AcquireTime: &at, RenewTime: &at, LeaseTransitions: ptr.To(int32(3)), Strategy: &strategy, PreferredHolder: ptr.To("b")}}
	}
	changes := map[string]func(*coordinationv1.LeaseSpec){
		"HolderIdentity":       func(s *coordinationv1.LeaseSpec) { s.HolderIdentity = ptr.To("c") },
		"LeaseDurationSeconds": func(s *coordinationv1.LeaseSpec) { s.LeaseDurationSeconds = nil },
		"AcquireTime":          func(s *coordinationv1.LeaseSpec) { s.AcquireTime = &metav1.MicroTime{Time: t0.Add(time.Microsecond)} },
		"RenewTime":            func(s *coordinationv1.LeaseSpec) { s.RenewTime = nil },
		"LeaseTransitions":     func(s *coordinationv1.LeaseSpec) { s.LeaseTransitions = ptr.To(int32(4)) },
		"Strategy":             func(s *coordinationv1.LeaseSpec) { s.Strategy = nil },
		"PreferredHolder":      func(s *coordinationv1.LeaseSpec) { s.PreferredHolder = ptr.To("c") },
	}
	// A field added to LeaseSpec in a later API must be added here and to SameRecord.
	if n := reflect.TypeOf(coordinationv1.LeaseSpec{}).NumField(); n != len(changes) {
		t.Fatalf("LeaseSpec has %d fields, the test covers %d", n, len(changes))
	}
	for field, change := range changes {
		l := base()
		change(&l.Spec)
		if SameRecord(base(), l) {
			t.Errorf("a change of %s is not a change of the record", field)
		}
	}
	other := base()
	other.Annotations = map[string]string{"x": "y"}
	other.Spec.RenewTime = &metav1.MicroTime{Time: t0.In(time.FixedZone("elsewhere", 3600))}
	if !SameRecord(base(), other) || !SameRecord(nil, nil) || SameRecord(base(), nil) {
		t.Error("metadata, an instant's representation or nil compared wrong")
	}
}

// A takeover follows the holder of a held record, the releaser of a released one.
func TestPreviousIsTheHolderOrTheReleaser(t *testing.T) {
	held := stored(Create(key, writer("a"), t0, 4), "9")
	released := stored(Release(held, "a", t0), "10")
	for _, tc := range []struct {
		name string
		l    *coordinationv1.Lease
		want string
	}{
		{"held", held, "a"},
		{"released", released, "a"},
		{"held again after the release", stored(Acquire(released, writer("b"), t0, AfterRelease, 4), "11"), "b"},
		{"never held", &coordinationv1.Lease{}, ""},
		{"missing", nil, ""},
	} {
		if got := Previous(tc.l); got != tc.want {
			t.Errorf("%s: Previous = %q, want %q", tc.name, got, tc.want)
		}
	}
}
