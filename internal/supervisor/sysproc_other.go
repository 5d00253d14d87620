//go:build unix && !linux

package supervisor

import "syscall"

// sysProcAttr puts the child in a process group of its own. Only Linux has a
// parent-death signal: elsewhere a child outlives an elector that is SIGKILLed.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
