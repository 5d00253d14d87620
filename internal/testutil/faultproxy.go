package testutil

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/rest"
)

// ProxyMode is what a FaultProxy does with traffic.
type ProxyMode int

const (
	// Pass forwards bytes both ways.
	Pass ProxyMode = iota
	// Refuse resets every open connection and every new one at once: the client sees
	// "connection reset", as from a process that is gone.
	Refuse
	// Blackhole keeps connections open and accepts new ones but forwards nothing, so
	// requests hang until the client gives up: a partition, not a refusal.
	Blackhole
	// ResponseLost forwards what clients send and drops what the server answers: a
	// request reaches the server and is applied, and the client sees a timeout, as
	// when a response is lost on the way back. The write under test must go over a
	// connection opened before: a new one cannot finish its TLS handshake (the
	// server's half never arrives), so it hangs like a Blackhole.
	ResponseLost
)

func (m ProxyMode) String() string {
	switch m {
	case Pass:
		return "Pass"
	case Refuse:
		return "Refuse"
	case Blackhole:
		return "Blackhole"
	case ResponseLost:
		return "ResponseLost"
	}
	return fmt.Sprintf("ProxyMode(%d)", int(m))
}

// FaultProxy is a loopback TCP proxy to one API server that a test switches between
// Pass, Refuse, Blackhole and ResponseLost. Give each simulated process its own,
// through ProxyConfig.
type FaultProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	mode   ProxyMode
	conns  map[*proxyConn]struct{}
	closed bool
	wg     sync.WaitGroup
	// delay holds back what the server sends (nanoseconds): a slow server.
	delay atomic.Int64
}

// proxyConn is one client connection and, unless it was accepted while
// blackholed, its upstream connection.
type proxyConn struct {
	client, upstream net.Conn
	// dropRequests, dropResponses: bytes read from the client, from the server, are
	// dropped. A Blackhole sets both on every open connection, a ResponseLost the
	// second; either way the connection is closed when the proxy passes again, since
	// the bytes it dropped broke its TLS stream. Never cleared: a broken stream is
	// not worth forwarding.
	mu                          sync.Mutex
	dropRequests, dropResponses bool
}

// StartFaultProxy listens on 127.0.0.1:0 and forwards to target (host:port), which
// must be a loopback address.
func StartFaultProxy(target string) (*FaultProxy, error) {
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		return nil, fmt.Errorf("proxy target %q: %w", target, err)
	}
	if ip := net.ParseIP(host); (ip == nil && host != "localhost") || (ip != nil && !ip.IsLoopback()) {
		return nil, fmt.Errorf("proxy target %q is not a loopback address", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &FaultProxy{ln: ln, target: target, conns: map[*proxyConn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// ProxyConfig starts a FaultProxy in front of cfg's API server and returns a copy of
// cfg that goes through it. TLS still verifies: ServerName stays the original host,
// which the serving certificate names.
func ProxyConfig(cfg *rest.Config) (*rest.Config, *FaultProxy, error) {
	u, err := url.Parse(cfg.Host)
	if err != nil || u.Host == "" {
		return nil, nil, fmt.Errorf("rest config host %q: not a URL with a host", cfg.Host)
	}
	p, err := StartFaultProxy(u.Host)
	if err != nil {
		return nil, nil, err
	}
	out := rest.CopyConfig(cfg)
	out.Host = "https://" + p.Addr()
	if out.TLSClientConfig.ServerName == "" {
		out.TLSClientConfig.ServerName = u.Hostname()
	}
	return out, p, nil
}

// Addr is the proxy's host:port.
func (p *FaultProxy) Addr() string { return p.ln.Addr().String() }

// Mode returns the current mode.
func (p *FaultProxy) Mode() ProxyMode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// SetMode switches the proxy. Refuse resets all open connections; Blackhole makes
// open connections drop everything, ResponseLost what the server sends; Pass closes
// the connections a Blackhole or ResponseLost broke, so the client reconnects.
func (p *FaultProxy) SetMode(m ProxyMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	for c := range p.conns {
		c.enter(m)
	}
}

// enter applies mode m to an open connection.
func (c *proxyConn) enter(m ProxyMode) {
	switch m {
	case Refuse:
		c.reset()
	case Blackhole:
		c.drop(true, true)
	case ResponseLost:
		c.drop(false, true)
	case Pass:
		if c.broken() {
			c.reset()
		}
	}
}

// SetDelay makes every response arrive d later than the server sent it, in order
// and without limiting throughput: a server that answers slowly. Zero: no delay.
func (p *FaultProxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

// Close stops listening and closes every connection.
func (p *FaultProxy) Close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.reset()
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	p.wg.Wait()
}

func (p *FaultProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode, closed := p.mode, p.closed
		p.mu.Unlock()
		if closed || mode == Refuse {
			resetConn(client)
			continue
		}
		c := &proxyConn{client: client, dropRequests: mode == Blackhole, dropResponses: mode == Blackhole || mode == ResponseLost}
		if mode != Blackhole {
			if c.upstream, err = net.Dial("tcp", p.target); err != nil {
				resetConn(client)
				continue
			}
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.reset()
			continue
		}
		p.conns[c] = struct{}{}
		if p.mode != mode {
			c.enter(p.mode) // switched while this one was dialling
		}
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(c)
	}
}

// serve copies both ways until either side ends, then forgets the connection.
func (p *FaultProxy) serve(c *proxyConn) {
	defer p.wg.Done()
	done := make(chan struct{}, 2)
	go func() { c.pump(c.upstream, c.client, true); done <- struct{}{} }()
	if c.upstream != nil {
		go func() {
			line := newDelayLine(c.client, &p.delay)
			c.pump(line, c.upstream, false)
			line.close()
			done <- struct{}{}
		}()
	}
	<-done
	c.reset()
	if c.upstream != nil {
		<-done
	}
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// delayLine writes to a connection what it is given, each chunk delay after it was
// given: a queue, so that delays do not add up, and order is kept.
type delayLine struct {
	dst     net.Conn
	delay   *atomic.Int64
	queue   chan delayedChunk
	pending atomic.Int64 // chunks given and not yet written
	failed  atomic.Bool
}

type delayedChunk struct {
	due  time.Time
	data []byte
}

func newDelayLine(dst net.Conn, delay *atomic.Int64) *delayLine {
	d := &delayLine{dst: dst, delay: delay, queue: make(chan delayedChunk, 4096)}
	go d.run()
	return d
}

func (d *delayLine) run() {
	for ch := range d.queue {
		time.Sleep(time.Until(ch.due))
		if !d.failed.Load() {
			if _, err := d.dst.Write(ch.data); err != nil {
				d.failed.Store(true)
			}
		}
		d.pending.Add(-1)
	}
}

func (d *delayLine) Write(b []byte) (int, error) {
	if d.failed.Load() {
		return 0, net.ErrClosed
	}
	delay := time.Duration(d.delay.Load())
	if delay == 0 && d.pending.Load() == 0 {
		return d.dst.Write(b)
	}
	d.pending.Add(1)
	d.queue <- delayedChunk{due: time.Now().Add(delay), data: append([]byte(nil), b...)}
	return len(b), nil
}

// close stops the line once the one writer is done with it.
func (d *delayLine) close() { close(d.queue) }

// pump copies src to dst (nil dst: drop everything), dropping bytes once the
// connection drops that direction (requests: client to server).
func (c *proxyConn) pump(dst io.Writer, src net.Conn, requests bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && dst != nil && !c.drops(requests) {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// drop makes the connection drop requests and/or responses from now on.
func (c *proxyConn) drop(requests, responses bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropRequests = c.dropRequests || requests
	c.dropResponses = c.dropResponses || responses
}

func (c *proxyConn) drops(requests bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if requests {
		return c.dropRequests
	}
	return c.dropResponses
}

// broken: the connection has dropped, or may have dropped, bytes.
func (c *proxyConn) broken() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropRequests || c.dropResponses
}

func (c *proxyConn) reset() {
	resetConn(c.client)
	if c.upstream != nil {
		_ = c.upstream.Close()
	}
}

// resetConn closes with RST rather than FIN, as a vanished peer looks.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
