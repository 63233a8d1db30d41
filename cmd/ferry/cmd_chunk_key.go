package main

import (
	"fmt"

	"github.com/ferry-dr/ferry/internal/chunk"
	"github.com/spf13/cobra"
)

func newChunkKeyCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "chunk-key", Short: "Make or identify the key that encrypts chunks at rest"}
	cmd.AddCommand(&cobra.Command{
		Use:   "generate FILE",
		Short: "Write a new random chunk key to FILE (mode 0600; an existing file is never replaced)",
		Long: `Write 32 random bytes, as hex, to FILE, readable only by its owner, and print the key's
id. Copy the file to every host of both sites that runs the publisher, the consumer,
ferry backup, ferry restore or ferry scrub, and set chunk.key_file (or --chunk-key) there.
A new key cannot read the chunks of the old one: switch both sites together; the
backups go on as incrementals of the same chains (docs/security.md, Rotation).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := chunk.GenerateKey(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote chunk key %s (key id %s)\n", args[0], k.KeyID())
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "id FILE",
		Short: "Print the id of the chunk key in FILE, to compare the sites' keys without showing them",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := chunk.LoadKey(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), k.KeyID())
			return nil
		},
	})
	return cmd
}
