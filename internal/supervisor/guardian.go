package supervisor

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"
	"time"
)

// The guardian stands between the supervisor and the command, so that the command's
// whole process tree dies with the elector, whatever kills the elector. It is this
// same executable, started again with guardianEnv set. It becomes a child subreaper
// (Linux), so that every descendant stays in its tree even when its parent dies or it
// calls setsid, starts the command, and then follows the control pipe from the
// supervisor: 'T' sends SIGTERM to every descendant, 'K' kills them all, and so does
// the pipe's end, which comes at once when the elector dies, even by SIGKILL (the
// kernel closes its descriptors). It exits once no descendant is left, with the
// command's exit code; the supervisor's wait for the guardian is a wait for the tree.

const (
	guardianEnv = "ELECTION_MANAGER_GUARDIAN"
	// The guardian's descriptors: the control pipe (read) and the start report (write).
	controlFD, reportFD = 3, 4
	// What the supervisor writes on the control pipe.
	cmdTerm, cmdKill = 'T', 'K'
	// killInterval is how often the guardian kills the tree again until it is empty:
	// a process may fork between the scan of the tree and the kill.
	killInterval = 10 * time.Millisecond
)

// guardianReady: this process called MaybeRunGuardian, so the guardian it starts
// (the same executable) will too.
var guardianReady bool

// MaybeRunGuardian runs the guardian and exits when this process was started as one
// by a Supervisor; otherwise it returns at once. A main (and a TestMain) whose
// process uses a Supervisor calls it first.
func MaybeRunGuardian() {
	guardianReady = true
	if os.Getenv(guardianEnv) == "" {
		return
	}
	os.Exit(runGuardian(os.Args[1:]))
}

func runGuardian(command []string) int {
	// The command's parent-death signal fires when the thread that started it ends:
	// this one, locked until the guardian exits.
	runtime.LockOSThread()
	control, report := os.NewFile(controlFD, "control"), os.NewFile(reportFD, "report")
	syscall.CloseOnExec(controlFD) // the command inherits neither
	syscall.CloseOnExec(reportFD)
	_ = os.Unsetenv(guardianEnv)
	// It ends with the tree or with the elector, not on a signal meant for a process
	// group or a terminal. Handled rather than ignored: the command must not
	// inherit SIG_IGN.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)

	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = commandAttr()
	err := becomeSubreaper()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		code := startFailureCode(err)
		_, _ = fmt.Fprintf(report, "err %d %v\n", code, err)
		return code
	}
	pid := cmd.Process.Pid
	_, _ = fmt.Fprintf(report, "ok %d\n", pid)
	_ = report.Close()

	orders := make(chan byte)
	go readOrders(control, orders)
	statuses, empty := make(chan syscall.WaitStatus), make(chan struct{})
	go reap(pid, statuses, empty)

	code := 0
	var stopping, killing bool
	var again <-chan time.Time
	for {
		select {
		case o, ok := <-orders:
			switch {
			case !ok: // the elector is gone
				orders, killing = nil, true
			case o == cmdTerm:
				stopping = true
				signalTree(syscall.SIGTERM, pid)
			case o == cmdKill:
				killing = true
			}
		case ws := <-statuses:
			code = statusCode(ws)
			// What it leaves behind does not outlive it, unless it was being
			// stopped: then the rest gets until the kill deadline too.
			killing = killing || !stopping
		case <-empty:
			signalTree(syscall.SIGKILL, pid) // outside Linux: what is left of its group
			return code
		case <-again:
		}
		if killing {
			signalTree(syscall.SIGKILL, pid)
			if again == nil {
				again = time.Tick(killInterval)
			}
		}
	}
}

// readOrders passes on what the supervisor writes, and closes orders at the pipe's end.
func readOrders(control *os.File, orders chan<- byte) {
	b := make([]byte, 1)
	for {
		n, err := control.Read(b)
		if n == 1 {
			orders <- b[0]
		}
		if err != nil {
			close(orders)
			return
		}
	}
}

// reap reaps every child of the guardian, the command's orphaned descendants
// included, passes on the command's status, and closes empty when none is left
// (ECHILD): a subreaper without children has no descendants.
func reap(pid int, statuses chan<- syscall.WaitStatus, empty chan<- struct{}) {
	for {
		var ws syscall.WaitStatus
		p, err := syscall.Wait4(-1, &ws, 0, nil)
		switch {
		case err == syscall.EINTR:
		case err != nil:
			close(empty)
			return
		case p == pid:
			statuses <- ws
		}
	}
}
