package main

import (
	"fmt"

	"github.com/ferry-dr/ferry/internal/siteinit"
	"github.com/spf13/cobra"
)

func newInitCommand() *cobra.Command {
	var o siteinit.Options
	cmd := &cobra.Command{
		Use:   "init --out DIR --source-host HOST --backup-host HOST",
		Short: "Write a secure two-site setup: CA, certificates, signing keys, both NATS servers' and each role's configuration",
		Long: `Write into --out everything two sites need to run Ferry over TLS with one
identity per role and signed messages: a private CA (ca.key: keep it
offline), a certificate for each site's NATS server (names: the given host,
localhost, 127.0.0.1), a client certificate per role (agent, publisher,
consumer, operator, restore) whose subject is its user at the servers, the
signing keys of the publisher, the consumer and the restore identity
(<role>-signing.key), both sites' nats-server configuration files (TLS for
clients and the leafnode, each role allowed only its own subjects) and a
Ferry configuration file per role, which names its own private keys and
trusts the other site's public signing keys. Private keys are written
0600; an existing file is never replaced.

Run the sites' servers with
  ferry nats-server --server-config DIR/backup-nats.conf    (backup site)
  ferry nats-server --server-config DIR/source-nats.conf    (source site)
and every Ferry process with --config DIR/<role>.yaml. docs/security.md
explains who holds which key and what each role can do.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			names, err := siteinit.Generate(o)
			if err != nil {
				return err
			}
			for _, n := range names {
				fmt.Fprintln(cmd.OutOrStdout(), n)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Out, "out", "", "directory to write into (created if missing)")
	f.StringVar(&o.Paths, "paths", "", "directory the files will be in on the hosts, as the configuration files name them (default: --out)")
	f.StringVar(&o.SourceHost, "source-host", "", "name or address of the source site's NATS server, as its clients reach it")
	f.StringVar(&o.BackupHost, "backup-host", "", "name or address of the backup site's NATS server, as its clients and the source site's server reach it")
	f.StringVar(&o.ListenHost, "listen-host", "0.0.0.0", "address both servers listen on")
	f.IntVar(&o.SourcePort, "source-port", 4222, "client port of the source site's server")
	f.IntVar(&o.BackupPort, "backup-port", 4222, "client port of the backup site's server")
	f.IntVar(&o.LeafPort, "leafnode-port", 7422, "leafnode port of the backup site's server")
	f.StringVar(&o.StoreDir, "store", "", "JetStream store of each server, as STORE/source and STORE/backup (default: none in the files; ferry nats-server --store gives it)")
	f.StringVar(&o.SourceDomain, "source-domain", "source", "JetStream domain of the source site")
	f.StringVar(&o.BackupDomain, "backup-domain", "backup", "JetStream domain of the backup site")
	_ = cmd.MarkFlagRequired("out")
	_ = cmd.MarkFlagRequired("source-host")
	_ = cmd.MarkFlagRequired("backup-host")
	return cmd
}
