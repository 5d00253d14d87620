package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/election-manager/election-manager/internal/testutil"
)

// The elector's tests run the elector binary as processes, each supervising
// testdata/elector-child, which records its start and stop (CLOCK_MONOTONIC) in a
// shared file and holds a unix-socket connection to the test for as long as it
// lives, so that the test sees the moment it dies, even by SIGKILL.

var electorBins struct {
	once           sync.Once
	elector, child string
	err            error
}

// electorBinaries builds the elector and the test child once per test binary.
func electorBinaries(t *testing.T) (elector, child string) {
	t.Helper()
	electorBins.once.Do(func() {
		dir, err := os.MkdirTemp("", "election-manager-elector-e2e-")
		if err != nil {
			electorBins.err = err
			return
		}
		if electorBins.elector, err = testutil.BuildBinary(dir, "cmd/elector"); err != nil {
			electorBins.err = err
			return
		}
		electorBins.child, electorBins.err = testutil.BuildBinary(dir, "test/e2e/testdata/elector-child")
	})
	if electorBins.err != nil {
		t.Fatal(electorBins.err)
	}
	return electorBins.elector, electorBins.child
}

// monoNow is CLOCK_MONOTONIC, the children's clock, in nanoseconds.
func monoNow() int64 { return testutil.MonoNow() }

// run is one child's life.
type run struct {
	holder  string
	epoch   int32
	pid     int
	start   int64 // CLOCK_MONOTONIC ns
	ignored int64 // when it ignored SIGTERM; 0 if it did not
	// end is when it died, 0 while it lives: its stop line if it wrote one (it exits
	// right after; the socket's EOF reaches this process later, by this process's
	// own scheduling delay), else when this process saw its socket close, which is
	// later than the death, never earlier.
	end int64
}

// children records every child of one test.
type children struct {
	*testutil.Children
	t       *testing.T
	offset  int64 // wall clock - monotonic clock, ns
	elector string
	child   string
}

func newChildren(t *testing.T) *children {
	t.Helper()
	elector, child := electorBinaries(t)
	c, err := testutil.NewChildren(filepath.Join(t.TempDir(), "children.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	kids := &children{Children: c, t: t, elector: elector, child: child, offset: time.Now().UnixNano() - monoNow()}
	t.Cleanup(kids.checkOneAtATime)
	return kids
}

// wall converts a monotonic timestamp to wall-clock time.
func (c *children) wall(mono int64) time.Time { return time.Unix(0, mono+c.offset) }

// runs reads every child's life so far, in order of start.
func (c *children) runs() []run {
	runs, err := c.Runs()
	if err != nil {
		c.t.Fatal(err)
	}
	out := make([]run, 0, len(runs))
	for _, r := range runs {
		out = append(out, run{holder: r.Holder, epoch: r.Epoch, pid: r.Pid, start: r.Start, ignored: r.Ignored, end: r.End})
	}
	return out
}

func (c *children) living() []run {
	var out []run
	for _, r := range c.runs() {
		if r.end == 0 {
			out = append(out, r)
		}
	}
	return out
}

// waitRun waits for a child that cond accepts and returns it.
func (c *children) waitRun(timeout time.Duration, what string, cond func(run) bool) run {
	c.t.Helper()
	var found run
	poll(c.t, timeout, what, func() bool {
		for _, r := range c.runs() {
			if cond(r) {
				found = r
				return true
			}
		}
		return false
	})
	return found
}

// waitDeath waits until the child pid has died and returns when (its run's end).
func (c *children) waitDeath(pid int, timeout time.Duration) int64 {
	c.t.Helper()
	poll(c.t, timeout, fmt.Sprintf("child %d dead", pid), func() bool { return c.Dead(pid) })
	for _, r := range c.runs() {
		if r.pid == pid {
			return r.end
		}
	}
	c.t.Fatalf("child %d died without having started", pid)
	return 0
}

// checkOneAtATime is the safety checker: no child starts before the one before it
// has died.
func (c *children) checkOneAtATime() {
	runs := c.runs()
	for i := 1; i < len(runs); i++ {
		prev, next := runs[i-1], runs[i]
		if prev.end == 0 || prev.end > next.start {
			c.t.Errorf("SAFETY: the child of %s (epoch %d) started while the child of %s (epoch %d) was alive",
				next.holder, next.epoch, prev.holder, prev.epoch)
		}
	}
	c.t.Logf("child safety checker: %d children, one at a time", len(runs))
}

// elector is an elector process under test.
type elector struct {
	*testutil.Process
	id    string
	proxy *testutil.FaultProxy
	http  string // base URL, "" without --http-addr
}

type electorArgs struct {
	id       string   // --id; "" leaves the default
	viaProxy bool     // through a FaultProxy of its own
	http     bool     // --http-addr on a free loopback port
	election []string // --group NAME, or the lock flags
	child    []string // flags for the child; nil: no command
	command  []string // a command instead of the test child
}

// startElector runs an elector in the cluster's namespace and waits until it joins.
func (c *cluster) startElector(kids *children, a electorArgs) *elector {
	c.t.Helper()
	e := &elector{id: a.id}
	kubeconfig := cp.Kubeconfig
	if a.viaProxy {
		kubeconfig, e.proxy = proxiedKubeconfig(c.t)
	}
	args := []string{"--kubeconfig", kubeconfig, "--namespace", c.namespace, "--zap-time-encoding=rfc3339nano"}
	if a.id != "" {
		args = append(args, "--id", a.id)
	}
	if a.http {
		addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(c.t))
		args = append(args, "--http-addr", addr)
		e.http = "http://" + addr
	}
	args = append(args, a.election...)
	switch {
	case a.command != nil:
		args = append(append(args, "--"), a.command...)
	case a.child != nil:
		args = append(append(args, "--", kids.child, "-log", kids.Log, "-watch", kids.Sock), a.child...)
	}
	name := a.id
	if name == "" {
		name = "elector"
	}
	e.Process = testutil.StartProcess(c.t, name, kids.elector, args...)
	e.WaitForOutput(c.t, `"msg":"Joining the election"`, 30*time.Second)
	return e
}

// groupArgs joins the group.
func groupArgs(name string) []string { return []string{"--group", name} }

// lockArgs elects on a Lease without a group, with the test timings.
func lockArgs(namespace, name string) []string {
	return []string{"--lock-name", name, "--lock-namespace", namespace, "--lease-duration", leaseDuration.String(),
		"--renew-deadline", renewDeadline.String(), "--retry-period", retryPeriod.String()}
}

// impersonatingKubeconfig is the admin kubeconfig acting as user, who has no RBAC.
func impersonatingKubeconfig(t *testing.T, user string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(cp.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, auth := range cfg.AuthInfos {
		auth.Impersonate = user
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// poll waits until cond holds.
func poll(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, timeout, true,
		func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("%s: not within %s", what, timeout)
	}
}

// processTree is a tree of sleeps an elector supervises: `sh -c script sh FILE`, the
// script writing the pids to FILE.
type processTree struct {
	t    *testing.T
	file string
}

// treeSleep is what the tree's processes run: a duration no other program uses.
const treeSleep = "sleep 1001.5"

// newProcessTree returns the tree's command: a shell that starts two sleeps, one in
// its process group and one that called setsid, and waits.
func newProcessTree(t *testing.T) (*processTree, []string) {
	p := &processTree{t: t, file: filepath.Join(t.TempDir(), "pids")}
	script := `echo $$ >> "$1"; ` +
		treeSleep + ` </dev/null >/dev/null 2>&1 & echo $! >> "$1"; ` +
		`setsid ` + treeSleep + ` </dev/null >/dev/null 2>&1 & echo $! >> "$1"; wait`
	return p, []string{"sh", "-c", script, "sh", p.file}
}

// wait waits for the shell and its two sleeps (the second in a session of its
// own) and returns their pids; the test's cleanup kills any sleep that survives.
func (p *processTree) wait(timeout time.Duration) []int {
	p.t.Helper()
	var pids []int
	poll(p.t, timeout, "the shell and its two sleeps", func() bool {
		b, _ := os.ReadFile(p.file)
		pids = pids[:0]
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return len(pids) == 3 && cmdline(pids[1]) == treeSleep && cmdline(pids[2]) == treeSleep
	})
	for _, pid := range pids[1:] {
		p.t.Cleanup(func() {
			if cmdline(pid) == treeSleep {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		})
	}
	if procStat(p.t, pids[2], 5) == procStat(p.t, pids[0], 5) {
		p.t.Fatalf("pid %d did not leave the shell's session", pids[2])
	}
	return pids
}

// cmdline is pid's command line, arguments joined by spaces; "" once it is gone.
func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.Join(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"), " ")
}

// procStat is field n (1-based, as in proc(5): 3 state, 4 ppid, 5 pgrp, 6 session)
// of /proc/PID/stat; "" once the process is gone.
func procStat(t *testing.T, pid, n int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// comm (field 2) may hold spaces: the fields from 3 on follow the last ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if n < 3 || n-3 >= len(f) {
		t.Fatalf("no field %d in /proc/%d/stat", n, pid)
	}
	return f[n-3]
}

// alive: the process exists and is not a zombie (dead, waiting to be reaped).
func alive(t *testing.T, pid int) bool {
	state := procStat(t, pid, 3)
	return state != "" && state != "Z" && state != "X"
}
