package faults

import (
	"bufio"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// children collects the elector children's own records: the file each appends its
// start and stop to, and the moment each dies, seen as the kernel closing the
// unix-socket connection it holds for its whole life (even on SIGKILL).
type children struct {
	log, sock string
	ln        net.Listener
	mu        sync.Mutex
	deaths    map[int]int64 // pid → CLOCK_MONOTONIC ns
}

func newChildren(dir string) (*children, error) {
	// A unix socket's path is limited to ~100 bytes: keep it short.
	sockDir, err := os.MkdirTemp("", "faults-")
	if err != nil {
		return nil, err
	}
	c := &children{log: filepath.Join(dir, "children.log"), sock: filepath.Join(sockDir, "watch.sock"), deaths: map[int]int64{}}
	if c.ln, err = net.Listen("unix", c.sock); err != nil {
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

func (c *children) watch(conn net.Conn) {
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
	at := monoNow()
	c.mu.Lock()
	c.deaths[pid] = at
	c.mu.Unlock()
}

// runs reads every child's life so far.
func (c *children) runs(offset int64) []Run {
	b, err := os.ReadFile(c.log)
	if err != nil && !os.IsNotExist(err) {
		return nil
	}
	c.mu.Lock()
	deaths := make(map[int]int64, len(c.deaths))
	for k, v := range c.deaths {
		deaths[k] = v
	}
	c.mu.Unlock()
	return ParseRuns("ext", b, deaths, offset)
}

func (c *children) close() {
	_ = c.ln.Close()
	_ = os.RemoveAll(filepath.Dir(c.sock))
}

// monoNow is CLOCK_MONOTONIC, the children's clock, in nanoseconds.
func monoNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return ts.Nano()
}
