package main

import (
	"github.com/ferry-dr/ferry/internal/health"
	"github.com/ferry-dr/ferry/publisher"
	"github.com/spf13/cobra"
)

func newPublisherCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "publisher", Short: "The source site's daemon"}
	var (
		cf = cephFlags{site: "source"}
		nf natsFlags
		po publisherFlags
		df daemonFlags
		kf chunkKeyFlags
	)
	run := &cobra.Command{
		Use:   "run",
		Short: "Back up every snapshot event, prune confirmed snapshots, resend lost chunks",
		Long: `Back up every snapshot event from the source cluster (-c/--id/--keyring, or
--source-conf/--source-id/--source-keyring; default: ceph.source of the config), prune the
snapshots the backup site confirmed, resend the chunks it lost, and apply restore jobs
queued for the source site.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := openDaemon("ferry publisher", &cf, &nf, &df)
			if err != nil {
				return err
			}
			defer d.close()
			opts, err := po.options(d.log)
			if err != nil {
				return err
			}
			if opts.ChunkKey, err = kf.sealer(); err != nil {
				return err
			}
			if d.metrics != nil {
				opts.Observer = d.metrics
			}
			d.beat(d.conn.Source, health.Options{Role: "publisher", Own: "NATS at the source site", Other: d.conn.Backup, OtherName: "the backup site"})
			pub, err := publisher.Open(cmd.Context(), d.cluster, d.conn, opts)
			if err != nil {
				return err
			}
			d.log.Info("publisher running")
			return d.run(cmd.Context(), pub.Run)
		},
	}
	cf.register(run.Flags())
	nf.register(run.Flags())
	po.register(run.Flags())
	kf.register(run.Flags())
	df.register(run.Flags(), "publisher")
	cmd.AddCommand(run)
	return cmd
}
