package app

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"
)

func newHistoryCommand(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "history NAME -o json|yaml",
		Short: "Print a LeaderGroup's history (status.history), newest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "json" && output != "yaml" {
				return fmt.Errorf("--output %q: want json or yaml", output)
			}
			g, err := getGroup(cmd.Context(), flags, args[0])
			if err != nil {
				return err
			}
			data, err := json.MarshalIndent(g.Status.History, "", "  ")
			if err != nil {
				return err
			}
			if output == "yaml" {
				if data, err = yaml.JSONToYAML(data); err != nil {
					return err
				}
			}
			_, err = fmt.Fprintln(streams.Out, string(data))
			return err
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "yaml", "Output format: json or yaml.")
	return cmd
}
