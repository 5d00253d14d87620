package controller

import (
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"

	"github.com/election-manager/election-manager/api/v1alpha1"
)

// Handing leadership to spec.preferredHolder is decided from shared truth only, so
// that every instance, and every term, decides alike: the group's spec, the
// preferred holder's presence Lease, and the group's Lease, which remembers a
// handover whose target did not take it (see leaserecord.HandoverLapsed).
//
// A preferred holder can be live (its presence Lease renews) and still not take the
// Lease: it runs no elector for the group, or it died a moment ago. Its reservation
// then lapses after a few retry periods and the group elects as usual. Each attempt
// is named by the group's generation and the moment the preferred holder's presence
// Lease was acquired, so such a holder costs one lapse per spec change or per
// return, never one per term.

// handover returns whom this instance's elector hands leadership to and under which
// attempt: spec.preferredHolder while presence, its live presence Lease, says it is
// a candidate (nil: it is not).
func handover(g *v1alpha1.LeaderGroup, presence *coordinationv1.Lease) (to, attempt string) {
	if g.Spec.PreferredHolder == "" || presence == nil {
		return "", ""
	}
	return g.Spec.PreferredHolder, handoverAttempt(g, presence)
}

// handoverAttempt names the attempt to hand g over to the holder of presence: new
// when the spec changes, or when the preferred holder joins again (its presence
// Lease is acquired anew: after a restart, or after it expired).
func handoverAttempt(g *v1alpha1.LeaderGroup, presence *coordinationv1.Lease) string {
	joined := "never"
	if t := presence.Spec.AcquireTime; t != nil {
		joined = t.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("generation=%d,joined=%s", g.Generation, joined)
}
