// Command testapp is the workload of the cluster tests: an HTTP server that answers
// with its pod's name, and whose readiness the test turns off and on, as an
// application that stops being able to serve would. On SIGTERM it goes on serving for
// --drain, as a server behind a preStop delay does while endpoints catch up.
//
//	GET  /         the pod's name
//	GET  /ready    200 while ready, 503 after POST /unready
//	POST /unready  fail the readiness probe from now on
//	POST /ready    pass it again
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	drain := flag.Duration("drain", 3*time.Second, "how long to go on serving after SIGTERM")
	flag.Parse()
	name, _ := os.Hostname()
	var unready atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, name) })
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		if unready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("POST /unready", func(http.ResponseWriter, *http.Request) { unready.Store(true) })
	mux.HandleFunc("POST /ready", func(http.ResponseWriter, *http.Request) { unready.Store(false) })
	srv := &http.Server{Addr: ":8080", Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		<-sig
		time.Sleep(*drain)
		_ = srv.Close()
	}()
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
