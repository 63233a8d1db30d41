package main

import (
	"github.com/ferry-dr/ferry/publisher"
	"github.com/spf13/cobra"
)

func newPublisherCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "publisher", Short: "The source site's daemon"}
	var (
		cf cephFlags
		nf natsFlags
		po publisherFlags
		df daemonFlags
	)
	run := &cobra.Command{
		Use:   "run",
		Short: "Back up every snapshot event, prune confirmed snapshots, resend lost chunks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := df.logger()
			if err != nil {
				return err
			}
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
			opts := po.options(log)
			m, srv, err := df.startMetrics(conn, log)
			if err != nil {
				return err
			}
			if srv != nil {
				defer srv.Close()
				opts.Observer = m
			}
			pub, err := publisher.New(cmd.Context(), cluster, conn, opts)
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
	df.register(run.Flags(), "publisher")
	cmd.AddCommand(run)
	return cmd
}
