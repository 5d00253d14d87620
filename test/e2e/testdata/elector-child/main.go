// Command elector-child is the child the elector tests supervise. It appends
//
//	start EPOCH T HOLDER PID    when it starts
//	stop EPOCH T HOLDER PID     when SIGTERM ends it
//	ignored EPOCH T HOLDER PID  when it ignores a SIGTERM (-ignore-term)
//	exit EPOCH T HOLDER PID     when it exits by itself (-exit-after)
//
// to the file -log (O_APPEND: lines of several children never interleave), T being
// CLOCK_MONOTONIC in nanoseconds. With -watch it keeps a connection to that unix
// socket open for its whole life, so that the test sees the moment it dies, even by
// SIGKILL, when the kernel closes it.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	logPath := flag.String("log", "", "File to append events to.")
	watch := flag.String("watch", "", "Unix socket to hold a connection to while alive.")
	ignoreTerm := flag.Bool("ignore-term", false, "Ignore SIGTERM.")
	exitAfter := flag.Duration("exit-after", 0, "Exit by itself after this long.")
	exitCode := flag.Int("exit-code", 0, "Exit code with -exit-after.")
	flag.Parse()

	f, err := os.OpenFile(*logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		fail(err)
	}
	event := func(kind string) {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			fail(err)
		}
		line := fmt.Sprintf("%s %s %d %s %d\n", kind, os.Getenv("ELECTION_EPOCH"), ts.Nano(), os.Getenv("ELECTION_HOLDER"), os.Getpid())
		if _, err := f.WriteString(line); err != nil {
			fail(err)
		}
	}
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM)
	if *watch != "" {
		conn, err := net.Dial("unix", *watch)
		if err != nil {
			fail(err)
		}
		if _, err := fmt.Fprintf(conn, "%d\n", os.Getpid()); err != nil {
			fail(err)
		}
		defer func() { _ = conn.Close() }()
	}
	event("start")

	var timeout <-chan time.Time
	if *exitAfter > 0 {
		timeout = time.After(*exitAfter)
	}
	for {
		select {
		case <-signals:
			if *ignoreTerm {
				event("ignored")
				continue
			}
			event("stop")
			os.Exit(0)
		case <-timeout:
			event("exit")
			os.Exit(*exitCode)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "elector-child:", err)
	os.Exit(3)
}
