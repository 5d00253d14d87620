package election

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/election-manager/election-manager/internal/testutil"
)

// The behaviour tests run against one real kube-apiserver and etcd.
var (
	controlPlane *testutil.ControlPlane
	admin        kubernetes.Interface
)

func TestMain(m *testing.M) {
	cp, err := testutil.StartControlPlane()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	controlPlane = cp
	admin = kubernetes.NewForConfigOrDie(unthrottled(cp.Config))
	code := m.Run()
	if err := cp.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// fast are short timings that keep the tests quick and still leave leaseDuration -
// renewDeadline = 1s between one holder's end and the next one's start.
var fast = Config{LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 500 * time.Millisecond}

// slack is what a loaded 2-core machine may add to a deadline (scheduling, -race).
const slack = 500 * time.Millisecond

func unthrottled(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = -1, 0 // no client-side rate limit: electors pace themselves
	return cfg
}

// newNamespace creates a namespace of its own for a test.
func newNamespace(t *testing.T) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	name = strings.Trim(name, "-") + "-" + rand.String(5)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := admin.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	return name
}

// eventually polls cond every 20ms until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// process simulates one manager process: its own proxy to the API server, client,
// LeaseInformer and Registry.
type process struct {
	id       string
	proxy    *testutil.FaultProxy
	client   kubernetes.Interface
	leases   *LeaseInformer
	reg      *Registry
	requests *requestCounter
	rec      *recorder
	cancel   context.CancelFunc
}

func startProcess(t *testing.T, id string, rec *recorder, namespaces ...string) *process {
	t.Helper()
	cfg, proxy, err := testutil.ProxyConfig(unthrottled(controlPlane.Config))
	if err != nil {
		t.Fatal(err)
	}
	p := &process{id: id, proxy: proxy, requests: &requestCounter{unhang: make(chan struct{})}, rec: rec}
	cfg.Wrap(p.requests.wrap)
	p.client = kubernetes.NewForConfigOrDie(cfg)
	if p.leases, err = NewLeaseInformer(p.client, nil, namespaces...); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.leases.Start(ctx)
	p.reg = NewRegistry(p.client.CoordinationV1(), p.leases, testr.NewWithOptions(t, testr.Options{Verbosity: 2}).WithName(id), Options{})
	t.Cleanup(func() {
		close(p.requests.unhang)
		p.reg.StopAll(time.Time{})
		cancel()
		proxy.Close()
	})
	return p
}

// join makes the process a candidate for lease (in namespace ns) with timings.
func (p *process) join(t *testing.T, lease types.NamespacedName, timings Config) *Elector {
	t.Helper()
	cfg := timings
	cfg.Lease, cfg.Identity, cfg.ReleaseOnCancel = lease, p.id, true
	key := lease.String()
	e, err := p.reg.Ensure(key, cfg, Callbacks{
		OnStartedLeading: func(epoch int32) { p.rec.started(key, p.id, epoch) },
		OnStoppedLeading: func() { p.rec.stopped(key, p.id) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// requestCounter counts a process's lease requests by verb. With hangPuts set, a PUT
// blocks until the test ends, ignoring its context: a transport that never returns.
// beforePut, when set, sees the body of every lease PUT just before it is sent.
type requestCounter struct {
	mu        sync.Mutex
	counts    map[string]int
	hangPuts  atomic.Bool
	unhang    chan struct{}
	beforePut atomic.Pointer[func(body []byte)]
	// putDelay holds every lease PUT that long before it is sent: a slow server.
	putDelay atomic.Int64
	// failPuts fails that many next lease PUTs at once, as a reset connection would.
	failPuts atomic.Int32
	// releaseDelay holds every release (a PUT of a Lease with no holder) that long.
	releaseDelay atomic.Int64
	// releasing counts the releases (PUTs of a Lease with no holder) in flight, and
	// mostReleasing the most there were at once.
	releasing, mostReleasing atomic.Int32
}

func (c *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		if strings.Contains(req.URL.Path, "/leases") {
			verb := req.Method
			switch {
			case req.URL.Query().Get("watch") == "true":
				verb = "WATCH"
			case req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/leases"):
				verb = "LIST"
			}
			c.mu.Lock()
			if c.counts == nil {
				c.counts = map[string]int{}
			}
			c.counts[verb]++
			c.mu.Unlock()
			var body []byte
			if verb == http.MethodPut {
				var err error
				if body, err = requestBody(req); err != nil {
					return nil, err
				}
				if isRelease(body) {
					c.releaseStarts()
					defer c.releasing.Add(-1)
					if d := time.Duration(c.releaseDelay.Load()); d > 0 {
						select {
						case <-time.After(d):
						case <-req.Context().Done():
							return nil, req.Context().Err()
						}
					}
				}
			}
			if verb == http.MethodPut && c.hangPuts.Load() {
				<-c.unhang
				return nil, fmt.Errorf("hung PUT released at the end of the test")
			}
			if verb == http.MethodPut && c.failPuts.Add(-1) >= 0 {
				return nil, fmt.Errorf("connection reset (injected)")
			}
			if d := time.Duration(c.putDelay.Load()); verb == http.MethodPut && d > 0 {
				select {
				case <-time.After(d):
				case <-req.Context().Done():
					return nil, req.Context().Err()
				}
			}
			if hook := c.beforePut.Load(); verb == http.MethodPut && hook != nil {
				(*hook)(body)
			}
		}
		return rt.RoundTrip(req)
	})
}

func (c *requestCounter) releaseStarts() {
	n := c.releasing.Add(1)
	for most := c.mostReleasing.Load(); n > most && !c.mostReleasing.CompareAndSwap(most, n); most = c.mostReleasing.Load() {
	}
}

func (c *requestCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// isRelease tells whether body is a Lease that names no holder: a release.
func isRelease(body []byte) bool {
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(body, nil, nil) // JSON or protobuf
	l, ok := obj.(*coordinationv1.Lease)
	return err == nil && ok && l.Spec.HolderIdentity == nil
}

// requestBody reads req's body without consuming it.
func requestBody(req *http.Request) ([]byte, error) {
	if req.GetBody == nil {
		return nil, fmt.Errorf("%s %s: body cannot be read twice", req.Method, req.URL.Path)
	}
	r, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	defer func() { _ = r.Close() }()
	return io.ReadAll(r)
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
