package faults

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// leakBaseline is the most goroutines and heap any manager had once the system
// first settled.
type leakBaseline struct {
	goroutines, heap float64
}

var (
	goroutinesMetric = regexp.MustCompile(`(?m)^go_goroutines (\S+)$`)
	heapMetric       = regexp.MustCompile(`(?m)^go_memstats_heap_inuse_bytes (\S+)$`)
)

// scrape reads a manager's goroutines and heap in use from its metrics.
func scrape(ctx context.Context, port int) (goroutines, heap float64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", port), nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	g, h := goroutinesMetric.FindSubmatch(b), heapMetric.FindSubmatch(b)
	if g == nil || h == nil {
		return 0, 0, fmt.Errorf("no go_goroutines or go_memstats_heap_inuse_bytes on port %d", port)
	}
	goroutines, _ = strconv.ParseFloat(string(g[1]), 64)
	heap, _ = strconv.ParseFloat(string(h[1]), 64)
	return goroutines, heap, nil
}

// Baseline records the managers' goroutines and heap now.
func (s *System) Baseline(ctx context.Context) error {
	for _, m := range s.managers {
		var g, h float64
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			var err error
			g, h, err = scrape(ctx, m.metrics)
			return err == nil, nil
		})
		if err != nil {
			return fmt.Errorf("metrics of %s: %w", s.current(m).id, err)
		}
		s.baseline.goroutines = max(s.baseline.goroutines, g)
		s.baseline.heap = max(s.baseline.heap, h)
	}
	s.logf("baseline: %.0f goroutines, %.1f MiB heap in use (the most of any manager)", s.baseline.goroutines, s.baseline.heap/(1<<20))
	return nil
}

// CheckLeaks waits for every manager's goroutines and heap to come back near the
// baseline (half as many goroutines again plus 30; twice the heap plus 16 MiB: a
// Go heap grows in steps) and records a problem for any that does not within a
// minute.
func (s *System) CheckLeaks(ctx context.Context) {
	maxG, maxH := s.baseline.goroutines*1.5+30, s.baseline.heap*2+16<<20
	for _, m := range s.managers {
		if s.current(m) == nil {
			continue
		}
		var g, h float64
		var last error
		err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			g, h, last = scrape(ctx, m.metrics)
			return last == nil && g <= maxG && h <= maxH, nil
		})
		s.logf("%s at the end: %.0f goroutines, %.1f MiB heap in use", s.current(m).id, g, h/(1<<20))
		if err != nil {
			s.problem("leak", fmt.Sprintf("%s: %.0f goroutines (at most %.0f), %.1f MiB heap (at most %.1f MiB) a minute after the last fault (%v)",
				s.current(m).id, g, maxG, h/(1<<20), maxH/(1<<20), last))
		}
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
