// Package app implements the kubectl-leadergroup commands.
package app

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/election-manager/election-manager/api/v1alpha1"
)

// NewCommand is `kubectl leadergroup`, with kubectl's usual flags (-n, --context,
// --kubeconfig, ...) loaded the standard client-go way.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	flags := genericclioptions.NewConfigFlags(true)
	root := &cobra.Command{
		Use:          "leadergroup",
		Short:        "Read and steer LeaderGroup elections",
		SilenceUsage: true,
		Annotations:  map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl leadergroup"},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	flags.AddFlags(root.PersistentFlags())
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.AddCommand(newStatusCommand(flags, streams), newHistoryCommand(flags, streams), newHandoverCommand(flags, streams))
	return root
}

// target is a LeaderGroup to act on and a client to reach it.
type target struct {
	client client.Client
	key    types.NamespacedName
}

func newTarget(flags *genericclioptions.ConfigFlags, name string) (*target, error) {
	cfg, err := flags.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	namespace, _, err := flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	return &target{client: c, key: types.NamespacedName{Namespace: namespace, Name: name}}, nil
}

func (t *target) get(ctx context.Context) (*v1alpha1.LeaderGroup, error) {
	g := &v1alpha1.LeaderGroup{}
	if err := t.client.Get(ctx, t.key, g); err != nil {
		return nil, fmt.Errorf("LeaderGroup %s: %w", t.key, err)
	}
	return g, nil
}

// getGroup reads the named LeaderGroup in the namespace the flags select.
func getGroup(ctx context.Context, flags *genericclioptions.ConfigFlags, name string) (*v1alpha1.LeaderGroup, error) {
	t, err := newTarget(flags, name)
	if err != nil {
		return nil, err
	}
	return t.get(ctx)
}
