package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
)

// newHandler serves /healthz and /leader.
//
//	/healthz          200 "ok", or 500 with the reason: the elector still thinks it
//	                  leads past the point others may take over, or a child
//	                  outlived its SIGKILL
//	/leader           the leaderView as JSON
//	/leader?watch=1   a stream: the view now, then one line per change, flushed;
//	                  Server-Sent Events ("data: {...}") with Accept: text/event-stream
func newHandler(state *leaderState, checks []func() error, done <-chan struct{}) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		for _, check := range checks {
			if err := check(); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /leader", func(w http.ResponseWriter, r *http.Request) {
		if watch := r.URL.Query().Get("watch"); watch == "1" || watch == "true" {
			streamLeader(w, r, state, done)
			return
		}
		v, _ := state.get()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	})
	return mux
}

// streamLeader writes the view, then every change, until the client goes away or
// the process stops. Changes in quick succession may coalesce: each line is the
// latest view.
func streamLeader(w http.ResponseWriter, r *http.Request, state *leaderState, done <-chan struct{}) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	sse := strings.Contains(r.Header.Get("Accept"), "text/event-stream")
	if sse {
		w.Header().Set("Content-Type", "text/event-stream")
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
	}
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	send := func(v leaderView) error {
		b, _ := json.Marshal(v)
		var err error
		if sse {
			_, err = fmt.Fprintf(w, "data: %s\n\n", b)
		} else {
			_, err = fmt.Fprintf(w, "%s\n", b)
		}
		flusher.Flush()
		return err
	}
	for {
		v, changed := state.get()
		if send(v) != nil {
			return
		}
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		case <-done:
			// The process is stopping: the last change, if any, then the end.
			if last, _ := state.get(); last != v {
				_ = send(last)
			}
			return
		}
	}
}

// serveHTTP listens on addr (so that a busy port is an error at start) and serves h
// until stop is called.
func serveHTTP(logger logr.Logger, addr string, h http.Handler) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--http-addr %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error(err, "HTTP server failed")
		}
	}()
	logger.Info("Serving /healthz and /leader", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			_ = srv.Close()
		}
	}, nil
}
