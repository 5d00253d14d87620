// Command pause holds a pod's namespaces, as registry.k8s.io/pause does: it waits
// for SIGTERM or SIGINT. The test cluster imports it under pause's name, since
// containerd wants its sandbox image and no registry is reachable.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
