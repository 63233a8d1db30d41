package main

import (
	"log/slog"
	"time"

	"github.com/ferry-dr/ferry/consumer"
	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/spf13/cobra"
)

func newConsumerCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "consumer", Short: "The backup site's daemon"}
	var (
		cf       cephFlags
		nf       natsFlags
		site     string
		baseWait time.Duration
	)
	run := &cobra.Command{
		Use:   "run",
		Short: "Apply backups to the backup cluster and confirm them to the source site",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log := newLogger(slog.LevelInfo)
			cluster, err := cf.connect()
			if err != nil {
				return err
			}
			defer cluster.Close()
			conn, err := nf.connect("ferry consumer")
			if err != nil {
				return err
			}
			defer conn.Close()
			if err := bus.SetupBackup(ctx, conn.Backup, bus.DefaultRetention); err != nil {
				return err
			}
			c, err := consumer.New(ctx, cluster, conn, consumer.Options{Site: site, BaseWait: baseWait, Log: log})
			if err != nil {
				return err
			}
			log.Info("consumer running", "site", site)
			return c.Run(ctx)
		},
	}
	cf.register(run.Flags())
	nf.register(run.Flags())
	run.Flags().StringVar(&site, "site", "backup", "name of this backup site, recorded with each backup")
	run.Flags().DurationVar(&baseWait, "base-wait", 30*time.Minute, "how long a backup waits for its base snapshot before it fails")
	cmd.AddCommand(run)
	return cmd
}
