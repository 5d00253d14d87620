//go:build unix && !linux

package supervisor

import (
	"os"
	"syscall"
)

// Outside Linux there is no child subreaper and no /proc: the guardian reaches the
// command's process group only, and a process that left it (setsid) escapes.

func guardianPath() (string, error) { return os.Executable() }

func becomeSubreaper() error { return nil }

// commandAttr puts the command in a process group of its own.
func commandAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// signalTree sends sig to the command's process group.
func signalTree(sig syscall.Signal, command int) { _ = syscall.Kill(-command, sig) }
