package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/recovery"
	"github.com/ferry-dr/ferry/internal/retention"
	"github.com/ferry-dr/ferry/internal/state"
	"github.com/spf13/cobra"
)

func newRetentionCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "retention",
		Short: "Thin out backup snapshots at the backup site by a retention policy",
	}
	cmd.AddCommand(newRetentionApplyCommand())
	return cmd
}

func newRetentionApplyCommand() *cobra.Command {
	var (
		cf     cephFlags
		nf     natsFlags
		policy string
		yes    bool
	)
	cmd := &cobra.Command{
		Use:   "apply --policy latest3,days7,weeks4,months12 [--yes] POOL/IMAGE",
		Short: "Show (or, with --yes, remove) the backup snapshots a policy does not keep",
		Long: `Apply a retention policy to the Ferry snapshots (ferry-*) of the backup image POOL/IMAGE,
on the backup site's cluster (-c/--id/--keyring). The policy keeps the N newest (latestN)
and, for each of the last N hours/days/weeks/months/years counted back from now, the
oldest snapshot of that period. The newest snapshot and the one the state bucket names
as the last backup (the base of the next incremental) are always kept; other snapshots
are never touched. Without --yes this is a dry run.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := ferry.ParseImageSpec(args[0])
			if err != nil {
				return err
			}
			p, err := retention.ParsePolicy(policy)
			if err != nil {
				return fmt.Errorf("--policy: %w", err)
			}
			conn, err := nf.connect("ferry retention")
			if err != nil {
				return fmt.Errorf("%w (retention reads the state bucket so it never removes the base of the next backup)", err)
			}
			defer conn.Close()
			book, err := state.Open(cmd.Context(), conn.Backup)
			if err != nil {
				return fmt.Errorf("%w (point --nats/--backup-domain at the backup site's JetStream, where ferry consumer run keeps it)", err)
			}
			image, base, err := recovery.RetentionTarget(cmd.Context(), book, spec)
			if err != nil {
				return err
			}
			cluster, err := cf.connect()
			if err != nil {
				return err
			}
			defer cluster.Close()
			res, err := recovery.ApplyRetention(recovery.RetentionOptions{
				Backup: cluster, Image: image, Policy: p, Base: base, Now: time.Now(), Remove: yes,
			})
			out := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SNAPSHOT\tTAKEN\tDECISION")
			for _, s := range res.Keep {
				why := "keep"
				if s.Pinned {
					why = "keep (base of the next backup)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, s.Time.UTC().Format(time.RFC3339), why)
			}
			for _, s := range res.Remove {
				fmt.Fprintf(tw, "%s\t%s\tremove\n", s.Name, s.Time.UTC().Format(time.RFC3339))
			}
			for _, n := range res.NotFerrys {
				fmt.Fprintf(tw, "%s\t-\tnot Ferry's, left alone\n", ferry.Printable(n)) // anybody's name
			}
			if ferr := tw.Flush(); err == nil {
				err = ferr
			}
			if err != nil {
				return err
			}
			if !yes {
				fmt.Fprintf(out, "dry run (policy %s): %d to keep, %d to remove; pass --yes to remove them\n", p, len(res.Keep), len(res.Remove))
				return nil
			}
			fmt.Fprintf(out, "removed %d snapshot(s) of %s; %d kept\n", len(res.Removed), image, len(res.Keep))
			return nil
		},
	}
	cf.site = "backup"
	cf.register(cmd.Flags())
	nf.register(cmd.Flags())
	cmd.Flags().StringVar(&policy, "policy", "", "retention policy, e.g. latest3,days7,weeks4,months12")
	cmd.Flags().BoolVar(&yes, "yes", false, "remove the snapshots (default: dry run)")
	return cmd
}
