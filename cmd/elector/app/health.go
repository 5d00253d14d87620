package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
)

// probe checks the child once; env is the child's ELECTION_* variables.
type probe func(ctx context.Context, env []string) error

// healthCheck probes the child while its elector leads, every period. After
// failures failed probes in a row it calls sick, once per term, on its own
// goroutine (sick may block), and probes no more until the next term.
type healthCheck struct {
	probe    probe
	period   time.Duration
	timeout  time.Duration
	failures int
	env      func(epoch int32) []string
	sick     func(epoch int32, reason string)
	logger   logr.Logger

	mu     sync.Mutex
	cancel context.CancelFunc // the current term's probing
}

// newHealthCheck is the options' health check, nil without one. sick gets the
// step-down back-off.
func newHealthCheck(o *Options, env func(int32) []string, logger logr.Logger, leaseDuration time.Duration,
	sick func(epoch int32, reason string, backoff time.Duration)) *healthCheck {
	if !o.HealthCheck() {
		return nil
	}
	p := urlProbe(o.HealthURL)
	if o.HealthCommand != "" {
		p = commandProbe(o.HealthCommand)
	}
	backoff := o.stepDownBackoff(leaseDuration)
	return &healthCheck{probe: p, period: o.HealthPeriod, timeout: o.healthTimeout(), failures: o.HealthFailures,
		env: env, logger: logger.WithName("health"),
		sick: func(epoch int32, reason string) { sick(epoch, reason, backoff) }}
}

// lead starts probing for the term epoch; it returns at once.
func (h *healthCheck) lead(epoch int32) {
	ctx, cancel := context.WithCancel(context.Background())
	h.mu.Lock()
	if h.cancel != nil {
		h.cancel()
	}
	h.cancel = cancel
	h.mu.Unlock()
	go h.run(ctx, epoch)
}

// lost stops probing: the term ended.
func (h *healthCheck) lost() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cancel != nil {
		h.cancel()
		h.cancel = nil
	}
}

func (h *healthCheck) run(ctx context.Context, epoch int32) {
	t := time.NewTicker(h.period)
	defer t.Stop()
	failed := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, h.timeout)
		err := h.probe(pctx, h.env(epoch))
		cancel()
		if ctx.Err() != nil {
			return // the term ended during the probe: its result says nothing
		}
		if err == nil {
			if failed > 0 {
				h.logger.Info("Health check passed again", "epoch", epoch, "failedBefore", failed)
			}
			failed = 0
			continue
		}
		failed++
		h.logger.Info("Health check failed", "epoch", epoch, "failures", failed, "threshold", h.failures, "err", err.Error())
		if failed >= h.failures {
			h.sick(epoch, fmt.Sprintf("health check failed %d times in a row: %v", failed, err))
			return
		}
	}
}

// outputLimit bounds what a failed probe's error quotes of its output.
const outputLimit = 256

// commandProbe runs command with sh -c, in a process group of its own that is
// killed when the probe times out. Exit 0 is healthy.
func commandProbe(command string) probe {
	return func(ctx context.Context, env []string) error {
		cmd := exec.CommandContext(ctx, "sh", "-c", command)
		cmd.Env = append(os.Environ(), env...)
		var out limitedBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = 100 * time.Millisecond // a background process holding the output
		err := cmd.Run()
		if ctx.Err() != nil {
			return errors.New("--health-command: still running at its timeout (--health-timeout), killed")
		}
		if err == nil {
			return nil
		}
		if msg := strings.TrimSpace(out.String()); msg != "" {
			return fmt.Errorf("--health-command: %w: %s", err, msg)
		}
		return fmt.Errorf("--health-command: %w", err)
	}
}

// urlProbe GETs url; a 2xx or 3xx answer is healthy (redirects are not followed).
func urlProbe(url string) probe {
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return func(ctx context.Context, _ []string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("--health-url: %w", err)
		}
		resp, err := client.Do(req)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("--health-url: GET %s: no answer in time", url)
			}
			return fmt.Errorf("--health-url: %w", err)
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, outputLimit))
		if resp.StatusCode >= 200 && resp.StatusCode < 400 {
			return nil
		}
		if msg := strings.TrimSpace(string(body)); msg != "" {
			return fmt.Errorf("--health-url: GET %s: %s: %s", url, resp.Status, msg)
		}
		return fmt.Errorf("--health-url: GET %s: %s", url, resp.Status)
	}
}

// limitedBuffer keeps the first outputLimit bytes written to it.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := outputLimit - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
