package testutil

import (
	"fmt"
	"net"
	"net/url"
	"sync"

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
)

func (m ProxyMode) String() string {
	switch m {
	case Pass:
		return "Pass"
	case Refuse:
		return "Refuse"
	case Blackhole:
		return "Blackhole"
	}
	return fmt.Sprintf("ProxyMode(%d)", int(m))
}

// FaultProxy is a loopback TCP proxy to one API server that a test switches between
// Pass, Refuse and Blackhole. Give each simulated process its own, through Config.
type FaultProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	mode   ProxyMode
	conns  map[*proxyConn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// proxyConn is one client connection and, unless it was accepted while
// blackholed, its upstream connection.
type proxyConn struct {
	client, upstream net.Conn
	// dead: bytes read are dropped. Set for every connection open when a Blackhole
	// starts; such a connection is closed when the proxy passes again, since the
	// bytes it dropped broke its TLS stream.
	mu   sync.Mutex
	dead bool
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
// open connections drop everything; Pass closes the connections a Blackhole broke,
// so the client reconnects.
func (p *FaultProxy) SetMode(m ProxyMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = m
	for c := range p.conns {
		switch m {
		case Refuse:
			c.reset()
		case Blackhole:
			c.mu.Lock()
			c.dead = true
			c.mu.Unlock()
		case Pass:
			if c.isDead() {
				c.reset()
			}
		}
	}
}

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
		c := &proxyConn{client: client, dead: mode == Blackhole}
		if !c.dead {
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
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(c)
	}
}

// serve copies both ways until either side ends, then forgets the connection.
func (p *FaultProxy) serve(c *proxyConn) {
	defer p.wg.Done()
	done := make(chan struct{}, 2)
	go func() { c.pump(c.upstream, c.client); done <- struct{}{} }()
	if c.upstream != nil {
		go func() { c.pump(c.client, c.upstream); done <- struct{}{} }()
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

// pump copies src to dst (nil dst: drop everything), dropping bytes once the
// connection is dead.
func (c *proxyConn) pump(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && dst != nil && !c.isDead() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (c *proxyConn) isDead() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dead
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
