package app

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/election-manager/election-manager/internal/election"
)

// fakeElector is what the handler reads, set by the test.
type fakeElector struct {
	mu   sync.Mutex
	info election.LeaderInfo
}

func (f *fakeElector) set(info election.LeaderInfo) {
	f.mu.Lock()
	f.info = info
	f.mu.Unlock()
}

func (f *fakeElector) read() election.LeaderInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.info
}

func newTestServer(t *testing.T, checks ...func() error) (*httptest.Server, *fakeElector, *leaderState) {
	t.Helper()
	f := &fakeElector{}
	state := newLeaderState(leaderView{Identity: "me", Lease: "ns/lock", Group: "ns/g"}, f.read)
	done := make(chan struct{})
	srv := httptest.NewServer(newHandler(state, checks, done))
	t.Cleanup(func() { close(done); srv.Close() })
	return srv, f, state
}

func TestElectorHealthz(t *testing.T) {
	var failing error
	srv, _, _ := newTestServer(t, func() error { return failing })
	get := func() (int, string) {
		resp, err := http.Get(srv.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get(); code != http.StatusOK {
		t.Errorf("healthy: %d", code)
	}
	failing = errors.New("elector for lease ns/lock has not ended its leadership")
	if code, body := get(); code != http.StatusInternalServerError || !strings.Contains(body, "has not ended") {
		t.Errorf("unhealthy: %d %q", code, body)
	}
}

func TestElectorLeaderJSON(t *testing.T) {
	srv, f, state := newTestServer(t)
	since := time.Date(2026, 11, 25, 19, 0, 0, 0, time.UTC)
	f.set(election.LeaderInfo{Holder: "me", Epoch: 4, Since: since, Leading: true})
	state.publish()
	resp, b := getLeader(t, srv.URL)
	want := `{"identity":"me","lease":"ns/lock","group":"ns/g","holder":"me","epoch":4,"since":"2026-11-25T19:00:00Z","leading":true}`
	if got := strings.TrimSpace(string(b)); got != want || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("got %s (%s)\nwant %s", got, resp.Header.Get("Content-Type"), want)
	}
}

func TestElectorLeaderWatch(t *testing.T) {
	for _, sse := range []bool{false, true} {
		name := map[bool]string{false: "json lines", true: "server-sent events"}[sse]
		t.Run(name, func(t *testing.T) {
			srv, f, state := newTestServer(t)
			f.set(election.LeaderInfo{Holder: "other", Epoch: 1, Since: time.Now()})
			state.publish()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/leader?watch=1", nil)
			if sse {
				req.Header.Set("Accept", "text/event-stream")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = resp.Body.Close() }()
			lines := bufio.NewScanner(resp.Body)
			read := func() leaderView {
				t.Helper()
				for lines.Scan() {
					line := lines.Text()
					if line == "" {
						continue
					}
					if sse {
						if !strings.HasPrefix(line, "data: ") {
							t.Fatalf("not an SSE data line: %q", line)
						}
						line = strings.TrimPrefix(line, "data: ")
					}
					var v leaderView
					if err := json.Unmarshal([]byte(line), &v); err != nil {
						t.Fatal(err)
					}
					return v
				}
				t.Fatalf("stream ended: %v", lines.Err())
				return leaderView{}
			}
			if v := read(); v.Holder != "other" || v.Leading {
				t.Errorf("first entry %+v, want the current view", v)
			}
			f.set(election.LeaderInfo{Holder: "other", Epoch: 1, Since: time.Now()})
			state.publish() // no change: nothing sent
			f.set(election.LeaderInfo{Holder: "me", Epoch: 2, Since: time.Now(), Leading: true})
			state.publish()
			if v := read(); v.Holder != "me" || v.Epoch != 2 || !v.Leading {
				t.Errorf("second entry %+v, want the takeover", v)
			}
		})
	}
}

// A step-down shows in /leader, wakes watchers, and stays through later changes.
func TestElectorLeaderStepDown(t *testing.T) {
	srv, f, state := newTestServer(t)
	f.set(election.LeaderInfo{Holder: "me", Epoch: 4, Since: time.Now(), Leading: true})
	state.publish()
	_, changed := state.get()
	at := time.Date(2026, 11, 25, 19, 0, 0, 0, time.UTC)
	state.steppedDown("health check failed 3 times in a row: exit status 1", at, 12*time.Second)
	select {
	case <-changed:
	default:
		t.Error("the step-down did not wake the watchers")
	}
	f.set(election.LeaderInfo{Holder: "other", Epoch: 5, Since: at})
	state.publish()
	_, b := getLeader(t, srv.URL)
	want := `"leading":false,"stepDown":{"reason":"health check failed 3 times in a row: exit status 1","at":"2026-11-25T19:00:00Z","until":"2026-11-25T19:00:12Z"}}`
	if got := strings.TrimSpace(string(b)); !strings.HasSuffix(got, want) || !strings.Contains(got, `"holder":"other","epoch":5`) {
		t.Errorf("got %s\nwant it to end with %s", got, want)
	}
}

// getLeader reads /leader once: the response and its body.
func getLeader(t *testing.T, base string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(base + "/leader")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}
