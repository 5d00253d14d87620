// Command manager runs election-manager: it reconciles LeaderGroups by running their
// electors and recording each election in the group's status.
package main

import (
	"flag"
	"fmt"
	"os"

	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/election-manager/election-manager/cmd/manager/app"
)

func main() {
	opts := app.NewOptions()
	fs := flag.NewFlagSet("manager", flag.ExitOnError)
	opts.BindFlags(fs)
	_ = fs.Parse(os.Args[1:]) // ExitOnError: Parse exits on a bad flag.

	logger := zap.New(zap.UseFlagOptions(&opts.Zap))
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)

	ctx := ctrl.LoggerInto(ctrl.SetupSignalHandler(), logger)
	if err := app.Run(ctx, opts); err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		os.Exit(1)
	}
}
