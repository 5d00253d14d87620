package supervisor

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// guardianPath is this executable, for the guardian: /proc/self/exe still names it
// after the file was replaced or deleted (an upgrade in place).
func guardianPath() (string, error) { return "/proc/self/exe", nil }

// becomeSubreaper makes the guardian the parent of every orphaned descendant (whose
// parent died, or that double-forked to become a daemon) instead of init, so that
// they stay in its tree.
func becomeSubreaper() error { return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) }

// commandAttr puts the command in a process group of its own and has the kernel
// SIGKILL it should the guardian itself be killed.
func commandAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
