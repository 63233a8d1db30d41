package main

import (
	"errors"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/config"
	"github.com/spf13/cobra"
)

func newConfigCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Check and show Ferry's configuration"}
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration file and FERRY_* environment; name each problem",
		Long: `Read the configuration (--config, else $FERRY_CONFIG, else /etc/ferry/ferry.yaml
if it exists), apply the FERRY_* environment variables, and check every value,
including that the files it names can be read. Prints one line per problem
(where it was set, the key, why) and exits non-zero if there is any; with no
problem, prints the effective value of each key and where it came from.`,
		Args:        cobra.NoArgs,
		Annotations: map[string]string{selfLoadsConfig: "yes"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			flag, _ := cmd.Flags().GetString("config")
			path := configPath(flag)
			l, err := config.Check(path, os.LookupEnv)
			var ps config.Problems
			if errors.As(err, &ps) {
				for _, p := range ps {
					fmt.Fprintln(cmd.OutOrStdout(), p)
				}
				return fmt.Errorf("%d problem(s) in the configuration", len(ps))
			}
			if err != nil {
				return err
			}
			if path == "" {
				fmt.Fprintln(cmd.OutOrStdout(), "no configuration file (none given and "+config.DefaultPath+" does not exist); defaults and environment:")
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: OK\n", path)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tVALUE\tFROM")
			for _, k := range config.Keys() {
				v, _ := l.Value(k.Name)
				from := l.Origin(k.Name)
				if from == "" {
					from = "default"
				}
				// A URL's password or token is never shown.
				fmt.Fprintf(tw, "%s\t%s\t%s\n", k.Name, orDash(bus.RedactURL(v)), from)
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(check)
	return cmd
}
