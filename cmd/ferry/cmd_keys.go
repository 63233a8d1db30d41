package main

import (
	"fmt"

	"github.com/ferry-dr/ferry/internal/sign"
	"github.com/spf13/cobra"
)

func newKeysCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "Signing keys that authenticate the sites' messages"}
	cmd.AddCommand(&cobra.Command{
		Use:   "generate FILE",
		Short: "Write a new signing key to FILE and print its public key",
		Long: `Write a new ed25519 signing key (an nkeys seed) to FILE, readable by its owner only,
and print its public key. FILE must not exist. Give FILE to the site's daemon
(publisher.signing_key or consumer.signing_key; consumer.restore_key for ferry restore),
and the public key to the other site (consumer.trusted_keys, publisher.trusted_keys,
publisher.restore_keys). See docs/security.md.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			public, err := sign.WriteKeyFile(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), public)
			return nil
		},
	})
	return cmd
}
