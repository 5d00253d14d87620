package election

import (
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func lease(holder string, epoch int32, durationSeconds int32, annotations map[string]string) *coordinationv1.Lease {
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "lock", ResourceVersion: "7", Annotations: annotations}}
	if holder != "" {
		l.Spec.HolderIdentity = ptr.To(holder)
	}
	if epoch != 0 {
		l.Spec.LeaseTransitions = ptr.To(epoch)
		l.Spec.AcquireTime = &metav1.MicroTime{Time: t0.Add(-time.Minute)}
	}
	if durationSeconds != 0 {
		l.Spec.LeaseDurationSeconds = ptr.To(durationSeconds)
	}
	return l
}

func TestDecideFollower(t *testing.T) {
	fallback := 15 * time.Second
	tests := []struct {
		name       string
		cur        *coordinationv1.Lease
		gone       *tombstone
		observedAt time.Time
		want       followerStep
	}{
		{"no lease: create at once", nil, nil, t0, followerStep{create: true, how: AcquiredElected}},
		{"deleted under a holder: wait for its expiry", nil, &tombstone{lease("b", 3, 10, nil), t0.Add(-9 * time.Second)}, t0,
			followerStep{retryAt: t0.Add(time.Second)}},
		{"deleted under a holder, expired: create", nil, &tombstone{lease("b", 3, 10, nil), t0.Add(-10 * time.Second)}, t0,
			followerStep{create: true, how: AcquiredElected}},
		{"deleted while released: create", nil, &tombstone{lease("", 3, 1, nil), t0}, t0,
			followerStep{create: true, how: AcquiredElected}},
		{"released", lease("", 3, 1, map[string]string{AnnotationReleasedBy: "b"}), nil, t0,
			followerStep{acquire: true, how: AcquiredAfterRelease}},
		{"released by client-go (no annotation)", lease("", 3, 1, nil), nil, t0,
			followerStep{acquire: true, how: AcquiredAfterRelease}},
		{"created empty, never held", lease("", 0, 0, nil), nil, t0,
			followerStep{acquire: true, how: AcquiredElected}},
		{"held, seen just now", lease("b", 3, 10, nil), nil, t0,
			followerStep{retryAt: t0.Add(10 * time.Second)}},
		{"held, one nanosecond before expiry", lease("b", 3, 10, nil), nil, t0.Add(-10*time.Second + 1),
			followerStep{retryAt: t0.Add(1)}},
		{"held, expiring exactly now", lease("b", 3, 10, nil), nil, t0.Add(-10 * time.Second),
			followerStep{acquire: true, how: AcquiredAfterExpiry}},
		{"held by this identity after a loss: same rule", lease("a", 3, 10, nil), nil, t0.Add(-11 * time.Second),
			followerStep{acquire: true, how: AcquiredAfterExpiry}},
		{"handed over to this identity: take it at once", lease("", 3, 10, map[string]string{AnnotationHandoverTo: "me"}), nil, t0,
			followerStep{acquire: true, how: AcquiredHandover}},
		{"handed over to another: theirs until it would expire", lease("", 3, 10, map[string]string{AnnotationHandoverTo: "c"}), nil, t0.Add(-4 * time.Second),
			followerStep{retryAt: t0.Add(6 * time.Second)}},
		{"handed over to another who never came: free after expiry", lease("", 3, 10, map[string]string{AnnotationHandoverTo: "c"}), nil, t0.Add(-10 * time.Second),
			followerStep{acquire: true, how: AcquiredAfterRelease}},
		{"held without a duration: own duration, not expired", lease("b", 3, 0, nil), nil, t0.Add(-14 * time.Second),
			followerStep{retryAt: t0.Add(time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decideFollower(t0, "me", tt.cur, tt.gone, tt.observedAt, fallback)
			if got != tt.want {
				t.Errorf("decideFollower() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSameRecordIgnoresMetadata(t *testing.T) {
	a := lease("b", 3, 10, nil)
	b := a.DeepCopy()
	b.ResourceVersion, b.Labels = "8", map[string]string{"x": "y"}
	if !sameRecord(a, b) {
		t.Errorf("a metadata change counted as a sign of life")
	}
	b.Spec.RenewTime = &metav1.MicroTime{Time: t0}
	if sameRecord(a, b) {
		t.Errorf("a renewal did not count as a change")
	}
	if sameRecord(a, nil) || !sameRecord(nil, nil) {
		t.Errorf("absence compared wrongly")
	}
}

func testConfig() *Config {
	return &Config{
		Lease:         types.NamespacedName{Namespace: "ns", Name: "lock"},
		Identity:      "a",
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
		Labels:          map[string]string{"app": "x"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: "u"}},
	}
}

func TestNewLease(t *testing.T) {
	l := newLease(testConfig(), t0, 1)
	switch {
	case HolderOf(l) != "a" || EpochOf(l) != 1:
		t.Errorf("holder %q epoch %d, want a 1", HolderOf(l), EpochOf(l))
	case *l.Spec.LeaseDurationSeconds != 15:
		t.Errorf("leaseDurationSeconds %d, want 15", *l.Spec.LeaseDurationSeconds)
	case !l.Spec.AcquireTime.Time.Equal(t0) || !l.Spec.RenewTime.Time.Equal(t0):
		t.Errorf("acquire/renew time %v/%v, want %v", l.Spec.AcquireTime, l.Spec.RenewTime, t0)
	case l.Annotations[AnnotationAcquiredHow] != string(AcquiredElected):
		t.Errorf("acquired-how %q", l.Annotations[AnnotationAcquiredHow])
	case l.Labels["app"] != "x" || len(l.OwnerReferences) != 1 || l.Namespace != "ns" || l.Name != "lock":
		t.Errorf("metadata %+v", l.ObjectMeta)
	}
}

func TestAcquiredLease(t *testing.T) {
	released := map[string]string{AnnotationReleasedBy: "b", AnnotationReleasedAt: "then", AnnotationAcquiredHow: "AfterExpiry"}
	tests := []struct {
		name        string
		cur         *coordinationv1.Lease
		how         AcquiredHow
		wantEpoch   int32
		keepRelease bool
	}{
		{"after release keeps the release annotations", lease("", 4, 1, released), AcquiredAfterRelease, 5, true},
		{"after expiry drops stale release annotations", lease("b", 4, 10, released), AcquiredAfterExpiry, 5, false},
		{"same identity after a loss still gets a new epoch", lease("a", 4, 10, nil), AcquiredAfterExpiry, 5, false},
		{"first holder of an empty lease", lease("", 0, 0, nil), AcquiredElected, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.cur.DeepCopy()
			l := acquiredLease(tt.cur, testConfig(), t0, tt.how)
			if HolderOf(l) != "a" || EpochOf(l) != tt.wantEpoch {
				t.Errorf("holder %q epoch %d, want a %d", HolderOf(l), EpochOf(l), tt.wantEpoch)
			}
			if l.Annotations[AnnotationAcquiredHow] != string(tt.how) {
				t.Errorf("acquired-how %q, want %q", l.Annotations[AnnotationAcquiredHow], tt.how)
			}
			if _, kept := l.Annotations[AnnotationReleasedBy]; kept != tt.keepRelease {
				t.Errorf("released-by kept = %v, want %v", kept, tt.keepRelease)
			}
			if l.ResourceVersion != "7" {
				t.Errorf("resourceVersion %q: the write must be guarded by the version read", l.ResourceVersion)
			}
			if !l.Spec.AcquireTime.Time.Equal(t0) || *l.Spec.LeaseDurationSeconds != 15 || l.Labels["app"] != "x" {
				t.Errorf("spec/labels not set: %+v %v", l.Spec, l.Labels)
			}
			if !sameRecord(before, tt.cur) || len(before.Annotations) != len(tt.cur.Annotations) {
				t.Errorf("the informer's object was modified")
			}
		})
	}
}

func TestRenewedLease(t *testing.T) {
	own := lease("a", 4, 15, map[string]string{AnnotationAcquiredHow: "AfterExpiry"})
	own.Labels = map[string]string{"other": "kept"}
	c := testConfig()
	c.LeaseDuration = 20 * time.Second
	l := renewedLease(own, c, t0)
	if EpochOf(l) != 4 || HolderOf(l) != "a" || !l.Spec.AcquireTime.Equal(own.Spec.AcquireTime) {
		t.Errorf("a renewal changed the term: %+v", l.Spec)
	}
	if !l.Spec.RenewTime.Time.Equal(t0) || *l.Spec.LeaseDurationSeconds != 20 {
		t.Errorf("renewTime %v duration %d, want %v 20 (new timings apply at the next renewal)", l.Spec.RenewTime, *l.Spec.LeaseDurationSeconds, t0)
	}
	if l.Labels["other"] != "kept" || l.Labels["app"] != "x" || l.Annotations[AnnotationAcquiredHow] != "AfterExpiry" {
		t.Errorf("metadata not kept: %v %v", l.Labels, l.Annotations)
	}
	if l.ResourceVersion != own.ResourceVersion {
		t.Errorf("resourceVersion %q, want %q", l.ResourceVersion, own.ResourceVersion)
	}
}

func TestReleasedLease(t *testing.T) {
	own := lease("a", 4, 15, map[string]string{AnnotationAcquiredHow: "Elected"})
	l := releasedLease(own, "a", "", t0)
	if HolderOf(l) != "" || l.Spec.HolderIdentity != nil {
		t.Errorf("holder not cleared: %v", l.Spec.HolderIdentity)
	}
	if EpochOf(l) != 4 {
		t.Errorf("epoch %d, want 4 (kept)", EpochOf(l))
	}
	if l.Annotations[AnnotationReleasedBy] != "a" {
		t.Errorf("released-by %q", l.Annotations[AnnotationReleasedBy])
	}
	if at, err := time.Parse(time.RFC3339Nano, l.Annotations[AnnotationReleasedAt]); err != nil || !at.Equal(t0) {
		t.Errorf("released-at %q (%v), want %v", l.Annotations[AnnotationReleasedAt], err, t0)
	}
	if _, ok := l.Annotations[AnnotationAcquiredHow]; ok {
		t.Errorf("acquired-how kept on a released lease")
	}
	if l.ResourceVersion != own.ResourceVersion {
		t.Errorf("release not guarded by our own version")
	}
	if acquisitionKind(l) != AcquiredAfterRelease {
		t.Errorf("acquisitionKind(released) = %s", acquisitionKind(l))
	}
}

func TestNamesUs(t *testing.T) {
	l := lease("a", 4, 15, nil)
	for _, tt := range []struct {
		id    string
		epoch int32
		want  bool
	}{{"a", 4, true}, {"a", 5, false}, {"b", 4, false}} {
		if got := namesUs(l, tt.id, tt.epoch); got != tt.want {
			t.Errorf("namesUs(%s, %d) = %v, want %v", tt.id, tt.epoch, got, tt.want)
		}
	}
	if namesUs(nil, "a", 4) {
		t.Errorf("namesUs(nil) = true")
	}
}
