// Command run-local is `make run`: it starts kube-apiserver and etcd on loopback with
// the CRD installed, writes a kubeconfig under bin/local, and runs the manager against
// them until interrupted; then it stops everything it started. A developer's manager
// never joins a real cluster's elections by accident: that takes `make run-cluster`.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/election-manager/election-manager/internal/testutil"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "run-local:", err)
		os.Exit(1)
	}
}

func run() error {
	manager := flag.String("manager", "bin/manager", "Path to the manager binary.")
	dir := flag.String("dir", "bin/local", "Folder for the kubeconfig.")
	flag.Parse()

	// Catch Ctrl-C from the start, so that an early one still stops the control plane.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)

	fmt.Fprintln(os.Stderr, "Starting kube-apiserver and etcd on 127.0.0.1...")
	cp, err := testutil.StartControlPlane()
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(os.Stderr, "Stopping kube-apiserver and etcd")
		_ = cp.Stop()
	}()

	kubeconfig, err := filepath.Abs(filepath.Join(*dir, "kubeconfig"))
	if err != nil {
		return err
	}
	if err := copyFile(cp.Kubeconfig, kubeconfig); err != nil {
		return err
	}
	assets, err := testutil.AssetsDir()
	if err != nil {
		return err
	}
	fmt.Printf("\nLocal control plane ready. In another shell:\n\n  export KUBECONFIG=%s PATH=%s:$PATH\n\n", kubeconfig, assets)

	cmd := exec.Command(*manager, append([]string{"--kubeconfig", kubeconfig}, flag.Args()...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	// Its own process group: the terminal's Ctrl-C reaches it once, through us, so it
	// shuts down gracefully (a second signal makes it exit at once). Pdeathsig stops it
	// if we are killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the manager: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	fmt.Fprintf(os.Stderr, "Manager running as PID %d\n", cmd.Process.Pid)

	select {
	case err := <-exited:
		// Keep the control plane: its state is what one wants to look at now.
		fmt.Fprintf(os.Stderr, "The manager exited (%v); the control plane runs on until Ctrl-C\n", err)
		<-signals
		return nil
	case sig := <-signals:
		fmt.Fprintf(os.Stderr, "Received %s: stopping the manager\n", sig)
		_ = cmd.Process.Signal(os.Interrupt)
		if err := <-exited; err != nil && !isInterrupted(err) {
			return fmt.Errorf("the manager: %w", err)
		}
		return nil
	}
}

func isInterrupted(err error) bool {
	var exit *exec.ExitError
	return errors.As(err, &exit) && !exit.Exited()
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o600)
}
