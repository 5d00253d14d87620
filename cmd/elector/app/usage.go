package app

import (
	"flag"
	"fmt"
)

const usageText = `elector joins a leader election on a Kubernetes Lease and runs COMMAND only while it leads.

Usage:
  elector --group NAME [--namespace NS] [--id ID] [flags] [-- COMMAND ARGS...]
  elector --lock-name NAME [--lock-namespace NS] [--lease-duration 15s --renew-deadline 10s --retry-period 2s] [flags] [-- COMMAND ARGS...]

With --group, the LeaderGroup (candidates.source External) names the Lease and its
timings; election-manager records who leads. Without, the flags do, as in
client-go's leader-election example.

The child runs in a process group of its own, with ELECTION_HOLDER (this identity),
ELECTION_EPOCH (the term's fencing token: the Lease's leaseTransitions, which only
grows), ELECTION_GROUP and ELECTION_LEASE in its environment. A new term starts a
new child. The child gets SIGTERM when leadership ends and SIGKILL, with its
process group, so that it is dead before anyone else can take the Lease over:

  lastRenewal   send time of the last successful renewal (this machine's clock)
  SIGTERM       when leadership ends: at the latest lastRenewal + renewDeadline
  SIGKILL       at min(SIGTERM + grace period, lastRenewal + leaseDuration - safety margin)
  safety margin 500ms + leaseDuration/100 (--safety-margin): clock-rate drift, kill latency
  grace period  at most leaseDuration - renewDeadline - safety margin (--grace-period),
                which must be positive: timings that leave no room are refused

Others take over no earlier than lastRenewal + leaseDuration on their clocks. On
Linux the child also gets SIGKILL if the elector dies (even by SIGKILL).

SIGTERM or SIGINT: stop the child by the same rules, release the Lease, exit 0; a
second signal kills the child at once. When the child exits by itself, the elector
releases the Lease and exits with the child's code (or restarts it:
--restart-child). After losing the Lease, it campaigns again.

With --health-command or --health-url, the child is checked every --health-period
while leading. After --health-failures failures in a row, the elector stops the
child by the rules above, releases the Lease so that another candidate takes over
at once, and does not campaign again for --step-down-backoff. The log and /leader
("stepDown") say why.

Flags:
`

// Usage returns the -help text printer for fs.
func Usage(fs *flag.FlagSet) func() {
	return func() {
		_, _ = fmt.Fprint(fs.Output(), usageText)
		fs.PrintDefaults()
	}
}
