// Command cluster runs a real one-node Kubernetes cluster on this machine, without
// Docker, with the chart installed from charts/election-manager and the manager image
// built here (see test/cluster/node). It needs root.
//
//	cluster up     start it, install the chart, print the KUBECONFIG line, and
//	               tear everything down on Ctrl-C
//	cluster down   remove a cluster left behind
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/election-manager/election-manager/test/cluster/node"
)

func main() {
	dir := flag.String("dir", "bin/cluster", "the cluster's state: certificates, kubeconfigs, etcd's data, logs")
	bin := flag.String("bin", "", "the directory with etcd, kube-apiserver, kubelet and the other Kubernetes binaries")
	helm := flag.String("helm", "helm", "the helm binary that installs the chart")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: cluster [flags] up|down")
		flag.PrintDefaults()
	}
	flag.Parse()
	repo, err := os.Getwd()
	if err != nil {
		fail(err)
	}
	cfg := node.Config{Dir: abs(*dir), Bin: abs(*bin), Repo: repo, Log: func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "cluster: "+format+"\n", args...)
	}}
	switch flag.Arg(0) {
	case "up":
		fail(up(cfg, *helm))
	case "down":
		fail(node.Down(cfg))
	default:
		flag.Usage()
		os.Exit(2)
	}
}

func up(cfg node.Config, helm string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	c, err := node.Up(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		cfg.Log("tearing down")
		if err := node.Down(cfg); err != nil {
			cfg.Log("%v", err)
		}
	}()
	install := exec.CommandContext(ctx, helm, "upgrade", "--install", "election-manager", "charts/election-manager",
		"--namespace", "election-manager-system", "--create-namespace", "--wait", "--timeout", "3m",
		"--kubeconfig", c.Kubeconfig)
	install.Stdout, install.Stderr = os.Stderr, os.Stderr
	if err := install.Run(); err != nil {
		return fmt.Errorf("helm install: %w", err)
	}
	cfg.Log("up in %.0fs, with the chart installed (image %s). Logs: %s/logs. Ctrl-C tears it down.",
		time.Since(start).Seconds(), c.Images.Manager, cfg.Dir)
	fmt.Printf("export KUBECONFIG=%s\n", c.Kubeconfig)
	<-ctx.Done()
	return nil
}

func abs(p string) string {
	if p == "" || p[0] == '/' {
		return p
	}
	wd, _ := os.Getwd()
	return wd + "/" + p
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}
