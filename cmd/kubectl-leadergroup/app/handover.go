package app

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/election-manager/election-manager/api/v1alpha1"
)

func newHandoverCommand(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	var to string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "handover NAME --to ID",
		Short: "Move leadership to a live candidate (sets spec.preferredHolder) and wait until it leads",
		Long: "Sets spec.preferredHolder and waits until the status shows the new holder. The preference stays\n" +
			"until changed or cleared: the preferred candidate keeps leadership while live, and gets it back\n" +
			"when it returns after a failure.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return fmt.Errorf("--to: name the candidate to hand leadership to")
			}
			t, err := newTarget(flags, args[0])
			if err != nil {
				return err
			}
			took, epoch, err := t.handover(cmd.Context(), to, timeout)
			if err != nil {
				return err
			}
			fmt.Fprintf(streams.Out, "%s leads %s (epoch %d): handed over in %s\n", to, t.key, epoch, took.Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "Identity to hand leadership to: a manager's --id (source Manager) or a pod's name (source Pods).")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "How long to wait for the handover to show in the status.")
	return cmd
}

// handover sets the preferred holder and polls the status until it leads.
func (t *target) handover(ctx context.Context, to string, timeout time.Duration) (time.Duration, int32, error) {
	start := time.Now()
	g := &v1alpha1.LeaderGroup{}
	g.Name, g.Namespace = t.key.Name, t.key.Namespace
	patch := client.RawPatch(types.MergePatchType, []byte(fmt.Sprintf(`{"spec":{"preferredHolder":%q}}`, to)))
	if err := t.client.Patch(ctx, g, patch); err != nil {
		return 0, 0, fmt.Errorf("setting spec.preferredHolder of LeaderGroup %s: %w", t.key, err)
	}
	var last *v1alpha1.LeaderGroup
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		g, err := t.get(ctx)
		if err != nil {
			return false, nil // keep trying until the timeout
		}
		last = g
		return g.Status.Holder == to && g.Status.ObservedGeneration >= g.Generation, nil
	})
	if err != nil {
		why := "the status does not say why"
		if last != nil {
			if c := meta.FindStatusCondition(last.Status.Conditions, v1alpha1.ConditionPreferredHolder); c != nil {
				why = c.Message
			}
		}
		return 0, 0, fmt.Errorf("%s does not lead LeaderGroup %s after %s: %s", to, t.key, timeout, why)
	}
	return time.Since(start), last.Status.Transitions, nil
}
