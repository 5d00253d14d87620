// Package election runs leader elections over coordination.k8s.io/v1 Leases.
//
// It keeps client-go's rules (tools/leaderelection): a candidate acquires a Lease
// when the record has no holder, or when the record has not changed for
// leaseDurationSeconds as observed on the candidate's own clock; every write is
// guarded by the resourceVersion it was based on; the leader renews every
// retryPeriod and gives up when no renewal succeeded within renewDeadline.
//
// It adds what the project's elector contract asks for (see DESIGN.md):
//   - leadership ends on time: an Elector stops calling itself leader at the send
//     time of its last successful renewal + renewDeadline, by a timer, whatever the
//     network does; every write carries a context deadline no later than that;
//   - safe release: only on a graceful stop while leading, only if the record still
//     names this identity and epoch, with the releaser recorded in annotations;
//   - re-campaign: after a loss an Elector rejoins as a follower by itself;
//   - the epoch (spec.leaseTransitions) grows on every acquisition;
//   - followers read the Lease from a shared informer (LeaseInformer) and make no
//     API requests; the leader's renewal is a single Update.
//
// What each write puts in the Lease, and when a record expires on this process's
// clock, is internal/leaserecord's: the elector decides when to write, never what
// a record means. Many Electors per process are managed by a Registry; they share
// one client and one LeaseInformer (whose Tracker every expiry is measured on).
// The package does not import controller-runtime.
package election
