// Command kubectl-leadergroup is a kubectl plugin for LeaderGroups: read an election
// at a glance, move leadership on purpose. Put it on PATH and run `kubectl leadergroup`.
package main

import (
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/election-manager/election-manager/cmd/kubectl-leadergroup/app"
)

func main() {
	if err := app.NewCommand(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}).Execute(); err != nil {
		os.Exit(1)
	}
}
