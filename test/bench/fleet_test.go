package bench

import (
	"fmt"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/election-manager/election-manager/internal/testutil"
)

// member is one of the three candidate processes of a run: a manager, or a process
// of plain client-go electors.
type member struct {
	id string
	*testutil.Process
	metrics string // host:port of the manager's metrics; "" for client-go
	pprof   string // host:port of the manager's pprof; "" for client-go
}

// startManager runs a manager that serves the run's namespace, with its own lock
// and presence on the run's timings, metrics and pprof on loopback.
func startManager(t *testing.T, r *run, id string) *member {
	t.Helper()
	m := &member{id: id, metrics: freeAddr(t), pprof: freeAddr(t)}
	m.Process = testutil.StartProcess(t, id, binaries.manager,
		"--kubeconfig", candidates, "--id", id,
		"--metrics-bind-address", m.metrics, "--metrics-secure=false",
		"--health-probe-bind-address=0", "--pprof-bind-address", m.pprof,
		"--namespaces", r.namespace, "--lock-namespace", r.namespace, "--lock-name", "lock",
		"--lock-lease-duration", r.timings.lease.String(), "--lock-renew-deadline", r.timings.renew.String(),
		"--lock-retry-period", r.timings.retry.String())
	m.WaitForOutput(t, `"msg":"Starting manager"`, time.Minute)
	return m
}

// startClientGo runs one client-go elector per group in one process.
func startClientGo(t *testing.T, r *run, id string) *member {
	t.Helper()
	m := &member{id: id}
	m.Process = testutil.StartProcess(t, id, binaries.clientGo,
		"--kubeconfig", candidates, "--id", id, "--lease-namespace", r.namespace,
		"--lease-prefix", groupPrefix, "--count", strconv.Itoa(r.groups),
		"--lease-duration", r.timings.lease.String(), "--renew-deadline", r.timings.renew.String(),
		"--retry-period", r.timings.retry.String())
	m.WaitForOutput(t, "electors started", time.Minute)
	return m
}

// stop SIGTERMs m and waits for it to exit.
func (m *member) stop(t *testing.T) {
	t.Helper()
	if err := m.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := m.Wait(t, 2*time.Minute); code != 0 {
		t.Logf("%s exited with %d after SIGTERM", m.id, code)
	}
}

// kill SIGKILLs m and waits for it to be gone.
func (m *member) kill(t *testing.T) {
	t.Helper()
	if err := m.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	m.Wait(t, 30*time.Second)
}

func freeAddr(t *testing.T) string {
	return net.JoinHostPort("127.0.0.1", fmt.Sprint(testutil.FreePort(t)))
}
