package leaserecord

import (
	"slices"

	coordinationv1 "k8s.io/api/coordination/v1"
)

// Finalizer keeps a deleted Lease, terminating but readable, until the status of
// its group records its epoch. A Lease's epoch is otherwise known only to the
// Lease: deleted before anyone recorded it, it could be handed out again by a
// candidate that never saw it. With it, the epoch outlives the Lease, and a
// re-created Lease starts above it (see the elector's epoch floor).
//
// Writers that keep the epoch (Writer.KeepEpoch) set it on every create and
// acquisition; the status writer removes it, and only it (Unkept).
const Finalizer = "coordination.electionmanager.dev/epoch"

// Deleting tells whether l is being deleted: its record is final, no elector
// may write it, and it goes once its finalizers are removed.
func Deleting(l *coordinationv1.Lease) bool {
	return l != nil && l.DeletionTimestamp != nil
}

// Kept tells whether l carries Finalizer: some writer that keeps the epoch wrote
// this object, after reading the group's recorded epochs fresh.
func Kept(l *coordinationv1.Lease) bool {
	return l != nil && slices.Contains(l.Finalizers, Finalizer)
}

// Unkept is l without Finalizer, for the update that lets a deleted Lease go once
// its epoch is recorded. The write is guarded by l's resourceVersion: a record
// changed since it was read is read and recorded again first.
func Unkept(l *coordinationv1.Lease) *coordinationv1.Lease {
	out := outgoing(l)
	out.Finalizers = slices.DeleteFunc(out.Finalizers, func(f string) bool { return f == Finalizer })
	return out
}

// keep adds Finalizer to l (a copy being written), unless l is being deleted: the
// API server refuses new finalizers then.
func keep(l *coordinationv1.Lease) {
	if !Kept(l) && !Deleting(l) {
		l.Finalizers = append(l.Finalizers, Finalizer)
	}
}
