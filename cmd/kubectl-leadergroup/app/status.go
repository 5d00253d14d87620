package app

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/election-manager/election-manager/api/v1alpha1"
	"github.com/election-manager/election-manager/internal/groups"
)

func newStatusCommand(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:   "status NAME",
		Short: "Show the holder, epoch, candidates and history of a LeaderGroup",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			g, err := getGroup(cmd.Context(), flags, args[0])
			if err != nil {
				return err
			}
			printStatus(streams.Out, g, time.Now())
			return nil
		},
	}
}

// printStatus writes the election at a glance: who leads, since when, who competes,
// and how leadership changed hands, with the leaderless gaps.
func printStatus(out io.Writer, g *v1alpha1.LeaderGroup, now time.Time) {
	s := g.Status
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "LeaderGroup:\t%s/%s\n", g.Namespace, g.Name)
	fmt.Fprintf(w, "Lease:\t%s\n", s.Lease)
	fmt.Fprintf(w, "Source:\t%s\n", g.Spec.Candidates.Source)
	if s.Holder != "" {
		fmt.Fprintf(w, "Holder:\t%s\n", s.Holder)
		fmt.Fprintf(w, "Since:\t%s (%s ago)\n", s.AcquiredAt.UTC().Format(time.RFC3339), now.Sub(s.AcquiredAt.Time).Round(time.Second))
	} else {
		fmt.Fprintf(w, "Holder:\t<none>\n")
	}
	fmt.Fprintf(w, "Epoch:\t%d\n", s.Transitions)
	for _, typ := range []string{v1alpha1.ConditionReady, v1alpha1.ConditionLeaderElected, v1alpha1.ConditionPreferredHolder} {
		if c := meta.FindStatusCondition(s.Conditions, typ); c != nil {
			fmt.Fprintf(w, "%s:\t%s (%s) %s\n", typ, c.Status, c.Reason, c.Message)
		}
	}
	var candidates []string
	for _, c := range s.Candidates {
		if c.Ready {
			candidates = append(candidates, c.Identity)
		} else {
			candidates = append(candidates, c.Identity+" (not ready)")
		}
	}
	fmt.Fprintf(w, "Candidates:\t%s\n", orDash(strings.Join(candidates, ", ")))
	_ = w.Flush()

	fmt.Fprintf(out, "\nTimings %s/%s/%s mean:\n", g.Spec.LeaseDuration.Duration, g.Spec.RenewDeadline.Duration, g.Spec.RetryPeriod.Duration)
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, f := range groups.Timings(g).Meaning() {
		fmt.Fprintf(w, "  %s:\t%s\t(%s)\n", f.What, f.Format(), f.Rule)
	}
	_ = w.Flush()

	fmt.Fprintln(out, "\nHistory:")
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "EPOCH\tHOLDER\tACQUIRED\tENDED\tSTART\tEND\tLEADERLESS BEFORE\tMISSED")
	for _, e := range s.History {
		ended, gap := "-", "-"
		if e.EndedAt != nil {
			ended = e.EndedAt.UTC().Format(time.RFC3339)
		}
		if e.LeaderlessFor != nil {
			gap = e.LeaderlessFor.Duration.String()
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", e.Transition, e.Holder, e.AcquiredAt.UTC().Format(time.RFC3339),
			ended, orDash(string(e.StartReason)), orDash(string(e.EndReason)), gap, e.MissedTransitions)
	}
	_ = w.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
