package testutil

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// ResponseLost: a request sent over an open connection reaches the server and is
// applied, while the client gets no answer; a new connection hangs in its
// handshake; passing again closes the broken connection and the client reconnects.
func TestResponseLostAppliesTheRequestAndDropsTheAnswer(t *testing.T) {
	var value atomic.Value
	value.Store("")
	srv, p := proxiedServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			b, _ := io.ReadAll(r.Body)
			value.Store(string(b))
		}
		_, _ = io.WriteString(w, value.Load().(string))
	})

	// Separate transports: one through the proxy, one straight to the server (the
	// test certificate names 127.0.0.1, whatever the port).
	tlsConfig := srv.Client().Transport.(*http.Transport).TLSClientConfig
	viaProxy := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig, ForceAttemptHTTP2: true}}
	direct := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig, ForceAttemptHTTP2: true}}
	t.Cleanup(viaProxy.CloseIdleConnections)
	t.Cleanup(direct.CloseIdleConnections)
	proxyURL, directURL := "https://"+p.Addr()+"/", srv.URL+"/"

	do := func(c *http.Client, url, method, body string, timeout time.Duration) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
		if err != nil {
			return "", err
		}
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		defer func() { _ = resp.Body.Close() }()
		if resp.ProtoMajor != 2 {
			return "", errors.New("not HTTP/2: " + resp.Proto)
		}
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}

	if _, err := do(viaProxy, proxyURL, http.MethodPut, "one", 5*time.Second); err != nil {
		t.Fatalf("through the proxy, passing: %v", err)
	}
	p.SetMode(ResponseLost)
	if got, err := do(viaProxy, proxyURL, http.MethodPut, "two", time.Second); err == nil {
		t.Fatalf("a response came through ResponseLost: %q", got)
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the client saw %v, want a timeout", err)
	}
	if got, err := do(direct, directURL, http.MethodGet, "", 5*time.Second); err != nil || got != "two" {
		t.Errorf("the server holds %q (%v), want the request sent during ResponseLost applied", got, err)
	}

	fresh := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig, ForceAttemptHTTP2: true}}
	t.Cleanup(fresh.CloseIdleConnections)
	if got, err := do(fresh, proxyURL, http.MethodPut, "three", 500*time.Millisecond); err == nil {
		t.Errorf("a new connection got an answer during ResponseLost: %q", got)
	}
	if got, _ := do(direct, directURL, http.MethodGet, "", 5*time.Second); got != "two" {
		t.Errorf("the server holds %q, want a new connection's request never sent (no handshake)", got)
	}

	p.SetMode(Pass)
	// The first request may still pick the connection the proxy just closed.
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := do(viaProxy, proxyURL, http.MethodGet, "", time.Second)
		if err == nil && got == "two" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after passing again the client gets %q (%v), want a reconnect and \"two\"", got, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SetDelay: every answer arrives the delay late, answers to concurrent requests do
// not wait for each other, and without a delay the connection is as before.
func TestDelayHoldsBackAnswersWithoutQueueingThem(t *testing.T) {
	srv, p := proxiedServer(t, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})
	tlsConfig := srv.Client().Transport.(*http.Transport).TLSClientConfig
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig, ForceAttemptHTTP2: true}, Timeout: 10 * time.Second}
	t.Cleanup(c.CloseIdleConnections)
	get := func() error {
		resp, err := c.Get("https://" + p.Addr() + "/")
		if err != nil {
			return err
		}
		defer func() { _ = resp.Body.Close() }()
		if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
			return errors.New("answer " + string(b))
		}
		return nil
	}
	if err := get(); err != nil { // the connection is open before the delay
		t.Fatal(err)
	}

	const delay = 300 * time.Millisecond
	p.SetDelay(delay)
	start := time.Now()
	errs := make(chan error, 10)
	for range 10 {
		go func() { errs <- get() }()
	}
	for range 10 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// One request's answer comes a delay late; ten at once, not ten delays late
	// (the bound leaves room for a loaded machine).
	if took := time.Since(start); took < delay || took > 5*delay {
		t.Fatalf("10 concurrent requests took %s with a %s delay: want at least the delay and far less than 10 of them", took, delay)
	}

	p.SetDelay(0)
	start = time.Now()
	if err := get(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= delay {
		t.Fatalf("a request took %s after the delay was lifted", took)
	}
}

// proxiedServer starts an HTTP/2 TLS server with handler and a FaultProxy in front.
func proxiedServer(t *testing.T, handler http.HandlerFunc) (*httptest.Server, *FaultProxy) {
	t.Helper()
	srv := httptest.NewUnstartedServer(handler)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	p, err := StartFaultProxy(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return srv, p
}
