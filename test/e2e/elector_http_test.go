package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// The elector's HTTP endpoints, as a sidecar's neighbour reads them: /healthz,
// /leader, and the /leader?watch=1 stream (JSON lines, or Server-Sent Events).

func TestElectorServesTheLeaderAndWatchers(t *testing.T) {
	c := newCluster(t)
	kids := newChildren(t)
	lease := types.NamespacedName{Namespace: c.namespace, Name: "work"}
	a := c.startElector(kids, electorArgs{id: "first", http: true, election: lockArgs(c.namespace, "work")})
	waitForLeaseHolder(t, lease, "first", 10*time.Second)
	b := c.startElector(kids, electorArgs{id: "second", http: true, election: lockArgs(c.namespace, "work")})
	waitForStatus(t, http.DefaultClient, b.http+"/healthz", "", http.StatusOK)

	var v struct {
		Identity, Holder, Lease string
		Epoch                   int32
		Since                   *time.Time
		Leading                 bool
	}
	poll(t, 10*time.Second, "second sees first lead", func() bool {
		resp, err := http.Get(b.http + "/leader")
		if err != nil {
			return false
		}
		defer func() { _ = resp.Body.Close() }()
		return json.NewDecoder(resp.Body).Decode(&v) == nil && v.Holder == "first"
	})
	if v.Identity != "second" || v.Leading || v.Epoch < 1 || v.Since == nil || v.Lease != lease.String() {
		t.Errorf("/leader on second: %+v", v)
	}

	lines := watchLeader(t, b.http, false)
	events := watchLeader(t, b.http, true)
	for _, stream := range []<-chan watched{lines, events} {
		if w := next(t, stream); w.Holder != "first" {
			t.Fatalf("a watch began with %+v, want the current holder first", w)
		}
	}
	if err := a.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitForLeaseHolder(t, lease, "second", 10*time.Second)
	acquired := getLease(t, lease).Spec.AcquireTime.Time
	for name, stream := range map[string]<-chan watched{"ndjson": lines, "sse": events} {
		for {
			w := next(t, stream)
			if w.Holder == "second" && w.Leading {
				if late := w.at.Sub(acquired); late > time.Second {
					t.Errorf("%s: the takeover arrived %s after it happened, want within 1s", name, late)
				}
				break
			}
		}
	}
}

// watched is one line of a /leader?watch=1 stream and when it arrived.
type watched struct {
	Holder  string
	Epoch   int32
	Leading bool
	at      time.Time
}

// watchLeader opens a stream (SSE or JSON lines) and delivers its entries.
func watchLeader(t *testing.T, base string, sse bool) <-chan watched {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/leader?watch=1", nil)
	prefix := ""
	if sse {
		req.Header.Set("Accept", "text/event-stream")
		prefix = "data: "
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); sse != (ct == "text/event-stream") {
		t.Errorf("Content-Type %q for sse=%v", ct, sse)
	}
	out := make(chan watched, 100)
	go func() {
		defer func() { _ = resp.Body.Close() }()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			if line == "" {
				continue
			}
			var w watched
			if !strings.HasPrefix(line, prefix) || json.Unmarshal([]byte(strings.TrimPrefix(line, prefix)), &w) != nil {
				t.Errorf("bad stream line %q", line)
				return
			}
			w.at = time.Now()
			out <- w
		}
	}()
	return out
}

func next(t *testing.T, stream <-chan watched) watched {
	t.Helper()
	select {
	case w := <-stream:
		return w
	case <-time.After(10 * time.Second):
		t.Fatal("nothing on the watch stream for 10s")
		return watched{}
	}
}
