package app

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
)

func TestHealthURLProbe(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(int(status.Load()))
		_, _ = w.Write([]byte("database unreachable\n"))
	}))
	defer srv.Close()
	probe := func(path string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		return urlProbe(srv.URL+path)(ctx, nil)
	}
	for _, code := range []int{http.StatusOK, http.StatusNoContent, http.StatusFound} {
		status.Store(int32(code))
		if err := probe("/healthz"); err != nil {
			t.Errorf("%d: %v, want healthy", code, err)
		}
	}
	status.Store(http.StatusServiceUnavailable)
	if err := probe("/healthz"); err == nil || !strings.Contains(err.Error(), "503 Service Unavailable: database unreachable") {
		t.Errorf("503: %v, want the status and the body", err)
	}
	if err := probe("/slow"); err == nil || !strings.Contains(err.Error(), "no answer in time") {
		t.Errorf("a probe past its timeout: %v", err)
	}
	srv.Close()
	if err := probe("/healthz"); err == nil {
		t.Error("a closed server is healthy")
	}
}

func TestHealthCommandProbe(t *testing.T) {
	run := func(command string, timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return commandProbe(command)(ctx, []string{"ELECTION_EPOCH=7"})
	}
	if err := run(`test "$ELECTION_EPOCH" = 7`, time.Second); err != nil {
		t.Errorf("healthy command with the child's environment: %v", err)
	}
	if err := run("echo not ready >&2; exit 3", time.Second); err == nil || !strings.Contains(err.Error(), "exit status 3: not ready") {
		t.Errorf("failing command: %v, want its status and output", err)
	}
	// A command that hangs, with a grandchild holding its output, is killed by its
	// timeout, grandchild included.
	pidFile := filepath.Join(t.TempDir(), "pid")
	start := time.Now()
	err := run("sleep 30 & echo $! > "+pidFile+"; wait", 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "--health-timeout") {
		t.Errorf("hanging command: %v, want a timeout", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the hanging probe returned after %s", took)
	}
	b, _ := os.ReadFile(pidFile)
	pid := strings.TrimSpace(string(b))
	if pid == "" {
		t.Fatal("the probe did not start its grandchild")
	}
	// SIGKILL is sent; the kernel tears the process down and its new parent reaps it.
	deadline := time.Now().Add(2 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the probe's grandchild %s outlived its timeout by 2s", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The check calls sick after the threshold of failures in a row, once per term; a
// success in between starts the count over; a term that ends stops the probing.
func TestHealthCheckThreshold(t *testing.T) {
	var (
		mu      sync.Mutex
		results = []bool{false, false, true, false, false, false, false}
		probes  int
		sick    = make(chan string, 4)
	)
	h := &healthCheck{
		probe: func(context.Context, []string) error {
			mu.Lock()
			defer mu.Unlock()
			ok := probes >= len(results) || results[probes]
			probes++
			if !ok {
				return context.DeadlineExceeded
			}
			return nil
		},
		period: 20 * time.Millisecond, timeout: 10 * time.Millisecond, failures: 3,
		env:    func(int32) []string { return nil },
		sick:   func(epoch int32, reason string) { sick <- reason },
		logger: testr.New(t),
	}
	h.lead(1)
	select {
	case reason := <-sick:
		if !strings.Contains(reason, "health check failed 3 times in a row") {
			t.Errorf("reason %q", reason)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("sick not called")
	}
	mu.Lock()
	n := probes
	mu.Unlock()
	if n != 6 {
		t.Errorf("sick after %d probes, want 6 (two failures, a success, three failures)", n)
	}
	time.Sleep(100 * time.Millisecond) // nothing to poll: no probe may come
	mu.Lock()
	if probes != n {
		t.Errorf("%d probes after sick, want none", probes-n)
	}
	mu.Unlock()
	h.lost()
	select {
	case r := <-sick:
		t.Errorf("sick called again: %s", r)
	default:
	}
}
