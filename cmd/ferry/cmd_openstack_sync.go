package main

import (
	"log/slog"
	"time"

	"github.com/ferry-dr/ferry/internal/openstack"
	"github.com/spf13/cobra"
)

func newOpenStackSyncCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "openstack-sync", Short: "Show backup status in Cinder volume and Nova server metadata"}
	var (
		nf         natsFlags
		of         openstackFlags
		site       string
		maxBackoff time.Duration
		verbose    bool
		shutdown   time.Duration
	)
	run := &cobra.Command{
		Use:   "run",
		Short: "Write each image's backup status (ferry:* keys) into OpenStack as it changes",
		Long: `Watches the state bucket of the backup site and writes each image's status into the
metadata of its Cinder volume (image volume-<id>, or the volume id of the snapshot event) or,
for a Nova ephemeral disk (<server id>_disk), of its server. Only ferry:* keys are written;
other keys stay. Credentials: OS_CLOUD (clouds.yaml, secure.yaml) or the OS_* variables of an
openrc file, including application credentials.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			log := newLogger(level)
			clients, err := of.connect(ctx)
			if err != nil {
				return err
			}
			// Finished last: the deadline covers closing NATS too.
			life := lifeline{log: log, timeout: shutdown}
			defer life.finish()
			conn, err := nf.connect("ferry openstack-sync")
			if err != nil {
				return err
			}
			defer conn.Close()
			life.conn = conn
			s, err := openstack.NewSyncer(ctx, conn.Backup, openstack.NewMetadata(clients),
				openstack.SyncOptions{Site: site, MaxBackoff: maxBackoff, Log: log})
			if err != nil {
				return err
			}
			log.Info("openstack-sync running", "site", site, "nova", clients.Compute != nil)
			return life.run(ctx, s.Run)
		},
	}
	nf.register(run.Flags())
	f := run.Flags()
	f.StringVar(&site, "site", defaults.Consumer.Site, "backup site name written as ferry:site")
	bindConfig(f, "site", "consumer.site")
	of.register(f)
	f.DurationVar(&maxBackoff, "max-backoff", 10*time.Minute, "longest wait between retries of a failed write")
	f.BoolVarP(&verbose, "verbose", "v", false, "also log every write and every ignored image")
	registerShutdownTimeout(f, &shutdown)
	cmd.AddCommand(run)
	return cmd
}
