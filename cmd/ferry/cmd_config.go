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
	var asJSON bool
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
				if asJSON {
					if err := writeJSON(cmd.OutOrStdout(), newConfigReport(path, ps, nil)); err != nil {
						return err
					}
				} else {
					for _, p := range ps {
						fmt.Fprintln(cmd.OutOrStdout(), p)
					}
				}
				return fmt.Errorf("%d problem(s) in the configuration", len(ps))
			}
			if err != nil {
				return err
			}
			r := newConfigReport(path, nil, l)
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), r)
			}
			if path == "" {
				fmt.Fprintln(cmd.OutOrStdout(), "no configuration file (none given and "+config.DefaultPath+" does not exist); defaults and environment:")
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: OK\n", path)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KEY\tVALUE\tFROM")
			for _, k := range r.Keys {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", k.Key, orDash(k.Value), k.From)
			}
			return tw.Flush()
		},
	}
	addJSONFlag(check, &asJSON)
	cmd.AddCommand(check)
	return cmd
}

type configProblem struct {
	Source string `json:"source"` // FILE:LINE or $FERRY_X; "" for a built-in default
	Key    string `json:"key"`
	Why    string `json:"why"`
}

type configKey struct {
	Key   string `json:"key"`
	Value string `json:"value"` // a URL's password or token is never shown
	From  string `json:"from"`  // FILE:LINE, $FERRY_X, or default
}

// configReport is what config check --json prints: the problems, or with
// none, the effective value of each key.
type configReport struct {
	Path     string          `json:"path"` // "": no configuration file
	OK       bool            `json:"ok"`
	Problems []configProblem `json:"problems"`
	Keys     []configKey     `json:"keys"`
}

func newConfigReport(path string, ps config.Problems, l *config.Loaded) configReport {
	r := configReport{Path: path, OK: len(ps) == 0, Problems: []configProblem{}, Keys: []configKey{}}
	for _, p := range ps {
		r.Problems = append(r.Problems, configProblem(p))
	}
	if l != nil {
		for _, k := range config.Keys() {
			v, _ := l.Value(k.Name)
			from := l.Origin(k.Name)
			if from == "" {
				from = "default"
			}
			r.Keys = append(r.Keys, configKey{Key: k.Name, Value: bus.RedactURL(v), From: from})
		}
	}
	return r
}
