package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
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
		cf     = cephFlags{site: "backup"}
		nf     natsFlags
		policy string
		yes    bool
		asJSON bool
		all    bool
	)
	cmd := &cobra.Command{
		Use:   "apply [--policy latest3,days7,weeks4,months12] [--yes] (POOL/IMAGE | --all)",
		Short: "Show (or, with --yes, remove) the backup snapshots a policy does not keep",
		Long: `Apply a retention policy to the Ferry snapshots (ferry-*) of the backup image POOL/IMAGE,
or with --all of every image the state bucket knows, on the backup site's cluster
(-c/--id/--keyring). The policy keeps the N newest (latestN) and, for each of the last N
hours/days/weeks/months/years counted back from now, the oldest snapshot of that period.
The newest snapshot and the one the state bucket names as the last backup (the base of
the next incremental) are always kept; other snapshots are never touched. Without --yes
this is a dry run.

Without --policy, each image gets the policy of the configuration's retention section
(retention.images, then retention.pools, then retention.default); an image none of them
names is left alone. ferry consumer run applies that section by itself every
retention.interval.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if all != (len(args) == 0) {
				return errors.New("give one POOL/IMAGE, or --all for every image the backup site holds")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			rules, err := retentionRules(cmd, policy)
			if err != nil {
				return withExitCode(exitUsage, err)
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
			cluster, err := cf.connect()
			if err != nil {
				return err
			}
			defer cluster.Close()
			out := cmd.OutOrStdout()
			var runs []recovery.ImageRetention
			if all {
				runs, err = recovery.ApplyRetentionAll(cmd.Context(), recovery.RetentionAllOptions{
					Backup: cluster, Book: book, Rules: rules, Now: time.Now(), Remove: yes,
				})
				if err != nil {
					return err
				}
			} else {
				spec, err := ferry.ParseImageSpec(args[0])
				if err != nil {
					return err
				}
				p, rule, ok := rules.For(spec)
				if !ok {
					return withExitCode(exitUsage, fmt.Errorf("no retention policy for %s: give --policy, or name it in the configuration's retention section (default, pools or images)", spec.AtSnap("")))
				}
				image, base, err := recovery.RetentionTarget(cmd.Context(), book, spec)
				if err != nil {
					return err
				}
				ir := recovery.ImageRetention{Source: spec.AtSnap(""), Image: image, Policy: p, Rule: rule}
				ir.Result, ir.Err = recovery.ApplyRetention(recovery.RetentionOptions{
					Backup: cluster, Image: image, Policy: p, Base: base, Now: time.Now(), Remove: yes,
				})
				runs = append(runs, ir)
			}
			if asJSON {
				reports, err := newRetentionReports(runs, !yes)
				if jerr := writeJSON(out, reports); jerr != nil {
					return jerr
				}
				return err
			}
			return printRetention(out, runs, all, yes)
		},
	}
	cf.register(cmd.Flags())
	nf.register(cmd.Flags())
	cmd.Flags().StringVar(&policy, "policy", "", "retention policy for every image named, e.g. latest3,days7,weeks4,months12 (default: the configuration's retention section)")
	cmd.Flags().BoolVar(&yes, "yes", false, "remove the snapshots (default: dry run)")
	addJSONFlag(cmd, &asJSON)
	cmd.Flags().BoolVar(&all, "all", false, "every image the state bucket knows, each under its policy")
	return cmd
}

// retentionRules: --policy for every image, else the configuration's.
func retentionRules(cmd *cobra.Command, policy string) (retention.Rules, error) {
	if policy != "" {
		p, err := retention.ParsePolicy(policy)
		if err != nil {
			return retention.Rules{}, fmt.Errorf("--policy: %w", err)
		}
		return retention.Rules{Default: p}, nil
	}
	rules, err := loadedConfig(cmd).Retention.Rules()
	if err == nil && rules.Empty() {
		err = errors.New("no retention policy: give --policy, or set the configuration's retention section (default, pools or images)")
	}
	return rules, err
}

// printRetention prints each image's decisions and a summary line; the
// error is the first image's failure.
func printRetention(out io.Writer, runs []recovery.ImageRetention, all, removed bool) error {
	var first error
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tSNAPSHOT\tTAKEN\tDECISION")
	keep, remove, gone, skipped := 0, 0, 0, 0
	for _, ir := range runs {
		img := ferry.Printable(ir.Image.String())
		if ir.Rule == "" {
			skipped++
			fmt.Fprintf(tw, "%s\t-\t-\tno policy applies, left alone\n", img)
			continue
		}
		res := ir.Result
		for _, s := range res.Keep {
			why := "keep"
			if s.Pinned {
				why = "keep (base of the next backup)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", img, s.Name, s.Time.UTC().Format(time.RFC3339), why)
		}
		for _, s := range res.Remove {
			fmt.Fprintf(tw, "%s\t%s\t%s\tremove (%s: %s)\n", img, s.Name, s.Time.UTC().Format(time.RFC3339), ir.Rule, ir.Policy)
		}
		for _, n := range res.NotFerrys {
			fmt.Fprintf(tw, "%s\t%s\t-\tnot Ferry's, left alone\n", img, ferry.Printable(n)) // anybody's name
		}
		if ir.Err != nil {
			fmt.Fprintf(tw, "%s\t-\t-\tfailed: %s\n", img, ferry.Printable(ir.Err.Error()))
			if first == nil {
				first = ir.Err
			}
		}
		keep, remove, gone = keep+len(res.Keep), remove+len(res.Remove), gone+len(res.Removed)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if all {
		fmt.Fprintf(out, "%d image(s), %d without a policy\n", len(runs), skipped)
	}
	if !removed {
		fmt.Fprintf(out, "dry run: %d to keep, %d to remove; pass --yes to remove them\n", keep, remove)
	} else {
		fmt.Fprintf(out, "removed %d snapshot(s); %d kept\n", gone, keep)
	}
	return first
}

// withRetention runs the configuration's retention beside a consumer
// daemon's work when retention.interval is set: every image the site
// holds, under its rule, once at start and then every interval.
// Like the consumer, it touches only the backup pools in pools (empty: any).
func withRetention(cmd *cobra.Command, d *daemon, pools []string, work func(context.Context) error) (func(context.Context) error, error) {
	r := loadedConfig(cmd).Retention
	if r.Interval <= 0 {
		return work, nil
	}
	rules, err := r.Rules()
	if err != nil {
		return nil, err
	}
	book, err := state.Open(cmd.Context(), d.conn.Backup)
	if err != nil {
		return nil, err
	}
	o := recovery.RetentionLoopOptions{Backup: d.cluster, Book: book, Rules: rules, Interval: r.Interval, Pools: pools, Log: d.log.With("task", "retention"),
		Active: func(ctx context.Context) (bool, error) { return bus.HeldHere(ctx, d.conn.Backup, bus.ConsumerLock) }}
	return func(ctx context.Context) error {
		rctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); recovery.RetentionLoop(rctx, o) }()
		// Waited for: the caller closes the Ceph connection next.
		defer func() { stop(); <-done }()
		return work(ctx)
	}, nil
}
