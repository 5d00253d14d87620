package controller

import (
	coordinationv1 "k8s.io/api/coordination/v1"

	"github.com/election-manager/election-manager/internal/leaserecord"
)

// termChanged tells whether a Lease event shows another term: a new holder or
// epoch, a release, or the Lease appearing, being deleted, going or being replaced. Renewals
// (and metadata changes) do not: they wake nothing.
func termChanged(old, cur *coordinationv1.Lease) bool {
	if old == nil || cur == nil {
		return true
	}
	return old.UID != cur.UID || leaserecord.Holder(old) != leaserecord.Holder(cur) ||
		leaserecord.Epoch(old) != leaserecord.Epoch(cur) || leaserecord.Deleting(old) != leaserecord.Deleting(cur)
}
