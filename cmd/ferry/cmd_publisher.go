package main

import (
	"github.com/ferry-dr/ferry/publisher"
	"github.com/spf13/cobra"
	"log/slog"
)

func newPublisherCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "publisher", Short: "The source site's daemon"}
	var (
		cf cephFlags
		nf natsFlags
		po publisherFlags
	)
	run := &cobra.Command{
		Use:   "run",
		Short: "Back up every snapshot event, prune confirmed snapshots, resend lost chunks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger(slog.LevelInfo)
			cluster, err := cf.connect()
			if err != nil {
				return err
			}
			defer cluster.Close()
			conn, err := nf.connect("ferry publisher")
			if err != nil {
				return err
			}
			defer conn.Close()
			pub, err := publisher.New(cmd.Context(), cluster, conn, po.options(log))
			if err != nil {
				return err
			}
			log.Info("publisher running")
			return pub.Run(cmd.Context())
		},
	}
	cf.register(run.Flags())
	nf.register(run.Flags())
	po.register(run.Flags())
	cmd.AddCommand(run)
	return cmd
}
