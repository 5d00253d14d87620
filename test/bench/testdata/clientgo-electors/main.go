// Command clientgo-electors is client-go's leader-election example run for many
// Leases in one process: one LeaderElector per Lease, as a program that adopted the
// example would run one per election it joins. The scale benchmark starts three of
// these beside three managers, for the same workload done the plain client-go way.
//
// Its client is not throttled: at client-go's default 5 requests a second, 100
// electors that each renew every second would lose their leases to the client's own
// rate limiter, which would measure the limiter and not the algorithm.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "Path to a kubeconfig.")
	id := flag.String("id", "", "Holder identity.")
	namespace := flag.String("lease-namespace", "default", "Namespace of the Leases.")
	prefix := flag.String("lease-prefix", "g-", "Lease names are this prefix and a five-digit index.")
	count := flag.Int("count", 1, "How many Leases (elections) to join.")
	leaseDuration := flag.Duration("lease-duration", 6*time.Second, "Lease duration.")
	renewDeadline := flag.Duration("renew-deadline", 3*time.Second, "Renew deadline.")
	retryPeriod := flag.Duration("retry-period", time.Second, "Retry period.")
	flag.Parse()
	klog.SetOutput(os.Stderr)

	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg.QPS, cfg.Burst = -1, 0
	leases := kubernetes.NewForConfigOrDie(cfg).CoordinationV1()

	ctx, cancel := context.WithCancel(context.Background())
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, os.Interrupt)
	go func() { <-signals; cancel() }()

	var wg sync.WaitGroup
	for i := range *count {
		name := fmt.Sprintf("%s%05d", *prefix, i)
		config := leaderelection.LeaderElectionConfig{
			Lock: &resourcelock.LeaseLock{
				LeaseMeta:  metav1.ObjectMeta{Name: name, Namespace: *namespace},
				Client:     leases,
				LockConfig: resourcelock.ResourceLockConfig{Identity: *id},
			},
			ReleaseOnCancel: true,
			LeaseDuration:   *leaseDuration,
			RenewDeadline:   *renewDeadline,
			RetryPeriod:     *retryPeriod,
			Name:            name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(context.Context) {},
				OnStoppedLeading: func() {},
			},
		}
		wg.Add(1)
		// Run is one-shot: the example exits when it loses its lease, to be restarted.
		// Here a fresh elector rejoins, as a restarted process would.
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				le, err := leaderelection.NewLeaderElector(config)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				le.Run(ctx)
			}
		}()
	}
	fmt.Println("electors started")
	wg.Wait()
	fmt.Println("electors stopped")
}
