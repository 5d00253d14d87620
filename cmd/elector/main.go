// Command elector joins a leader election on a Kubernetes Lease, from a LeaderGroup
// of source External or from flags, and runs a command only while it leads.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/election-manager/election-manager/cmd/elector/app"
	"github.com/election-manager/election-manager/internal/supervisor"
)

func main() {
	// When this process is the guardian of a child's process tree, it is nothing else.
	supervisor.MaybeRunGuardian()

	opts := app.NewOptions()
	fs := flag.NewFlagSet("elector", flag.ContinueOnError)
	opts.BindFlags(fs)
	fs.Usage = app.Usage(fs)
	if err := opts.Parse(fs, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(app.ExitUsage) // the flag package has printed the error
	}

	logger := zap.New(zap.UseFlagOptions(&opts.Zap))
	ctrllog.SetLogger(logger)
	klog.SetLogger(logger)

	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, os.Interrupt)
	code, err := app.Run(logr.NewContext(context.Background(), logger), opts, signals)
	if err != nil {
		fmt.Fprintln(os.Stderr, "elector:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
