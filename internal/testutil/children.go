package testutil

import (
	"bufio"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Children collects the lives of test/e2e/testdata/elector-child processes: the
// file each appends its lines to ("start|ignored|stop|exit EPOCH MONO HOLDER PID",
// MONO being CLOCK_MONOTONIC ns), and the moment each dies, seen as the kernel
// closing the unix-socket connection it holds for its whole life (even on SIGKILL).
// A child is started with "-log" Log and "-watch" Sock.
type Children struct {
	Log, Sock string
	ln        net.Listener
	mu        sync.Mutex
	deaths    map[int]int64 // pid → MONO
}

// ChildRun is one child's life, in CLOCK_MONOTONIC ns.
type ChildRun struct {
	Holder string
	Epoch  int32
	Pid    int
	Start  int64
	// Ignored is when it ignored SIGTERM; 0 if it did not.
	Ignored int64
	// End is when it died, 0 while it lives: its own stop line if it wrote one (it
	// exits right after; the socket's EOF reaches this process later, by this
	// process's scheduling delay), else when this process saw its socket close,
	// which is later than the death, never earlier.
	End int64
}

// NewChildren listens for the children's sockets and records into log.
func NewChildren(log string) (*Children, error) {
	// A unix socket's path is limited to ~100 bytes: keep it short.
	dir, err := os.MkdirTemp("", "children-")
	if err != nil {
		return nil, err
	}
	c := &Children{Log: log, Sock: filepath.Join(dir, "watch.sock"), deaths: map[int]int64{}}
	if c.ln, err = net.Listen("unix", c.Sock); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	go func() {
		for {
			conn, err := c.ln.Accept()
			if err != nil {
				return
			}
			go c.watch(conn)
		}
	}()
	return c, nil
}

// Close stops listening and removes the socket.
func (c *Children) Close() {
	_ = c.ln.Close()
	_ = os.RemoveAll(filepath.Dir(c.Sock))
}

// watch records when the child on conn dies: the kernel closes its end.
func (c *Children) watch(conn net.Conn) {
	defer func() { _ = conn.Close() }()
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, r)
	at := MonoNow()
	c.mu.Lock()
	c.deaths[pid] = at
	c.mu.Unlock()
}

// Dead tells whether the child pid's socket has closed.
func (c *Children) Dead(pid int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.deaths[pid]
	return ok
}

// Runs reads every child's life so far, in order of start.
func (c *Children) Runs() ([]ChildRun, error) {
	b, err := os.ReadFile(c.Log)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	var out []ChildRun
	byPid := map[int]int{}
	ends := map[int]int64{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) != 5 {
			continue
		}
		epoch, _ := strconv.Atoi(f[1])
		at, _ := strconv.ParseInt(f[2], 10, 64)
		pid, _ := strconv.Atoi(f[4])
		switch f[0] {
		case "start":
			byPid[pid] = len(out)
			out = append(out, ChildRun{Holder: f[3], Epoch: int32(epoch), Pid: pid, Start: at})
		case "ignored":
			if i, ok := byPid[pid]; ok && out[i].Ignored == 0 {
				out[i].Ignored = at
			}
		case "stop", "exit":
			ends[pid] = at
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range out {
		died, dead := c.deaths[out[i].Pid]
		if !dead {
			continue // it may have written its last line, but it lives
		}
		if end, ok := ends[out[i].Pid]; ok {
			died = end // its own record is earlier than the socket's EOF
		}
		out[i].End = died
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return out, nil
}

// MonoNow is CLOCK_MONOTONIC, the children's clock, in nanoseconds.
func MonoNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return ts.Nano()
}
