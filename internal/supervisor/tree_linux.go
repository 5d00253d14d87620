package supervisor

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// signalTree sends sig to every descendant of this process (the guardian), found
// in /proc by their parent pids: the guardian is a subreaper, so an orphan's parent
// is the guardian and no descendant is missed. Without /proc, it falls back to the
// command's process group.
//
// A pid read from /proc may be reaped and reused before the kill, by a process
// outside the tree; the window is microseconds against a pid cycling through
// pid_max, and the guardian's own children (that it has not reaped) cannot be.
func signalTree(sig syscall.Signal, command int) {
	pids, err := descendants(os.Getpid())
	if err != nil {
		_ = syscall.Kill(-command, sig)
		return
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, sig)
	}
}

// descendants lists root's descendants, parents before their children.
func descendants(root int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := parent(pid); ok {
			children[ppid] = append(children[ppid], pid)
		}
	}
	out := append([]int(nil), children[root]...)
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	if len(out) == 0 && len(children) == 0 {
		return nil, errors.New("no process in /proc")
	}
	return out, nil
}

// parent is pid's parent pid, from /proc/PID/stat: "pid (comm) state ppid ...",
// where comm may hold spaces and parentheses.
func parent(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false // gone meanwhile
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}
