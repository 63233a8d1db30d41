package main

import (
	"time"

	"github.com/ferry-dr/ferry/consumer"
	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/health"
	"github.com/spf13/cobra"
)

func newConsumerCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "consumer", Short: "The backup site's daemon"}
	var (
		cf       = cephFlags{site: "backup"}
		nf       natsFlags
		df       daemonFlags
		site     string
		baseWait time.Duration
		poolMap  string
		tf       trustFlags
		kf       chunkKeyFlags
	)
	run := &cobra.Command{
		Use:   "run",
		Short: "Apply backups to the backup cluster and confirm them to the source site",
		Long: `Apply the backups the source site sends to the backup cluster (-c/--id/--keyring, or
--backup-conf/--backup-id/--backup-keyring; default: ceph.backup of the config) and
confirm them to the source site.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			d, err := openDaemon("ferry consumer", &cf, &nf, &df)
			if err != nil {
				return err
			}
			defer d.close()
			if err := bus.SetupBackup(ctx, d.conn.Backup, bus.DefaultRetention); err != nil {
				return err
			}
			pools, err := ferry.ParsePoolMap(poolMap)
			if err != nil {
				return err
			}
			opts := consumer.Options{Site: site, BaseWait: baseWait, PoolMap: pools, Log: d.log}
			if opts.Pools, opts.Signer, opts.Trust, err = tf.load(); err != nil {
				return err
			}
			if opts.ChunkKey, err = kf.sealer(); err != nil {
				return err
			}
			if d.metrics != nil {
				opts.Observer = d.metrics
			}
			c, err := consumer.New(ctx, d.cluster, d.conn, opts)
			if err != nil {
				return err
			}
			d.beat(d.conn.Backup, health.Options{Role: "consumer", Own: "NATS at the backup site", Work: c.Work})
			d.log.Info("consumer running", "site", site)
			work, err := withRetention(cmd, d, opts.Pools, c.Run)
			if err != nil {
				return err
			}
			return d.run(ctx, work)
		},
	}
	cf.register(run.Flags())
	nf.register(run.Flags())
	run.Flags().StringVar(&site, "site", defaults.Consumer.Site, "name of this backup site, recorded with each backup")
	run.Flags().DurationVar(&baseWait, "base-wait", defaults.Consumer.BaseWait, "how long a backup waits for its base snapshot before it fails")
	bindConfig(run.Flags(), "site", "consumer.site")
	bindConfig(run.Flags(), "base-wait", "consumer.base_wait")
	run.Flags().StringVar(&poolMap, "pool-map", defaults.Consumer.PoolMap, "backup pool for each source pool, SRC=DST[,SRC=DST...] (default: the same pool names)")
	bindConfig(run.Flags(), "pool-map", "consumer.pool_map")
	tf.register(run.Flags(), "consumer", "source site (its manifests and pages)")
	df.register(run.Flags(), "consumer")
	kf.register(run.Flags())
	cmd.AddCommand(run)
	return cmd
}
