package main

import (
	"fmt"

	"github.com/ferry-dr/ferry/internal/buildinfo"
	"github.com/spf13/cobra"
)

func newVersionCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print Ferry's version, commit and Go version (as ferry --version)",
		Args:  cobra.NoArgs,
		// Needs no configuration, so a broken one does not hide the version.
		Annotations: map[string]string{selfLoadsConfig: "yes"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), buildinfo.Read())
			}
			fmt.Fprint(cmd.OutOrStdout(), versionText(buildinfo.Read()))
			return nil
		},
	}
	addJSONFlag(cmd, &asJSON)
	return cmd
}

// addVersionFlag makes ferry --version print what ferry version prints.
func addVersionFlag(root *cobra.Command) {
	root.Version = buildinfo.Read().Version
	root.Flags().Bool("version", false, "print the version, commit and Go version")
	root.SetVersionTemplate(versionText(buildinfo.Read()))
}

func versionText(i buildinfo.Info) string {
	return fmt.Sprintf("ferry %s\ncommit: %s\ngo: %s\n", i.Version, i.Commit, i.GoVersion)
}
