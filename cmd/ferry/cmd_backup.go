package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/metrics"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/publisher"
	"github.com/spf13/cobra"
)

func newBackupCommand() *cobra.Command {
	var (
		cf         = cephFlags{site: "source"}
		nf         natsFlags
		po         publisherFlags
		kf         chunkKeyFlags
		resync     bool
		rollback   bool
		noWait     bool
		timeout    time.Duration
		noProgress bool
		quiesced   bool
		verbose    bool
		textfile   string
		asJSON     bool
	)
	cmd := &cobra.Command{
		Use:   "backup POOL/IMAGE",
		Short: "Back up one image now: snapshot, send, wait for the backup site, prune",
		Long: `Take a Ferry snapshot of POOL/IMAGE at the source cluster (-c/--id/--keyring, or
--source-conf/--source-id/--source-keyring), send the changes since the
newest snapshot the backup site holds (everything, the first time), wait until the
backup site confirms, then delete the source's older Ferry snapshots and print a summary.
A consumer must be running at the backup site (ferry consumer run).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			ctx := cmd.Context()
			img, err := ferry.ParseImageSpec(args[0])
			if err != nil {
				return err
			}
			if img.Snap != "" {
				return fmt.Errorf("%s: give the image without a snapshot; ferry backup takes its own", args[0])
			}
			var once *publisher.Once
			if textfile != "" {
				run := metrics.BackupRun{Image: img.String(), Start: time.Now()}
				defer func() { err = writeRunMetrics(textfile, run, once, err) }()
			}
			log := newLogger(logLevel(verbose))
			cluster, err := cf.connect()
			if err != nil {
				return err
			}
			defer cluster.Close()
			conn, err := nf.connect("ferry backup")
			if err != nil {
				return err
			}
			defer conn.Close()
			opts, err := po.options(log)
			if err != nil {
				return err
			}
			if opts.ChunkKey, err = kf.sealer(); err != nil {
				return err
			}
			pub, err := publisher.New(ctx, cluster, conn, opts)
			if err != nil {
				return err
			}

			o := publisher.OnceOptions{Resync: resync, ForceRollback: rollback, NoWait: noWait, Timeout: timeout,
				UI: backupUI{noProgress: noProgress}}
			if quiesced {
				o.Consistency = ferry.Quiesced
			}
			start := time.Now()
			once, err = pub.BackupOnce(ctx, img, o)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(os.Stdout, newBackupReport(once, !noWait, time.Since(start)))
			}
			if noWait {
				fmt.Fprintf(os.Stdout, "sent %s; not waiting for the backup site (--no-wait)\n", once.Sent.BackupID)
				return nil
			}
			printSummary(os.Stdout, once.Sent, once.State, once.Pruned, time.Since(start))
			return nil
		},
	}
	cf.register(cmd.Flags())
	nf.register(cmd.Flags())
	po.register(cmd.Flags())
	kf.register(cmd.Flags())
	cmd.Flags().BoolVar(&resync, "resync", false, "send a full backup and start a new chain at the backup site (the old backup image is kept)")
	cmd.Flags().BoolVar(&rollback, "force-rollback", false, "let the backup site discard writes made to the backup image outside Ferry (it refuses to apply on top of them otherwise)")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the backup is queued, without waiting for the backup site")
	cmd.Flags().DurationVar(&timeout, "timeout", time.Hour, "how long to wait for the backup site's confirmation (0: no limit)")
	cmd.Flags().BoolVar(&noProgress, "no-progress", false, "do not show progress")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log each step")
	addJSONFlag(cmd, &asJSON)
	cmd.Flags().BoolVar(&quiesced, "quiesced", false, "record the snapshot as quiesced (the caller froze the guest's filesystems)")
	cmd.Flags().StringVar(&textfile, "metrics-textfile", "", "at the end of the run, success or not, record it in this file for node_exporter's textfile collector, e.g. /var/lib/prometheus/node-exporter/ferry-backup.prom")
	return cmd
}

// writeRunMetrics records a run of ferry backup that ended with err in
// the textfile, and returns err; or, when only the textfile could not be
// written, that error, saying what became of the backup.
func writeRunMetrics(path string, run metrics.BackupRun, once *publisher.Once, err error) error {
	run.End, run.Err = time.Now(), err
	if once != nil && once.Sent != nil {
		run.BytesSent = once.Sent.Stats.BytesSent
	}
	werr := metrics.WriteTextfile(path, run)
	switch {
	case werr == nil:
		return err
	case err != nil:
		return fmt.Errorf("%w (and --metrics-textfile: %w)", err, werr)
	default:
		return fmt.Errorf("backup of %s done, but %w", run.Image, werr)
	}
}

func printSummary(w io.Writer, m *publisher.Sent, st *ferry.ImageState, pruned []string, took time.Duration) {
	s := m.Stats
	kind := "full"
	if m.FromSnap != "" {
		kind = "incremental from " + m.FromSnap
	}
	fmt.Fprintf(w, "Backup of %s confirmed by the backup site (%s)\n", m.Image, kind)
	fmt.Fprintf(w, "  changed:      %s: %s of data read, %s of zeros (sent as ranges, no data)\n",
		progress.Bytes(s.ChangedBytes), progress.Bytes(s.DataBytes), progress.Bytes(s.ChangedBytes-s.DataBytes))
	fmt.Fprintf(w, "  chunks:       %d, %d sent, %d already at the backup site\n", s.Chunks, s.ChunksSent, s.Chunks-s.ChunksSent)
	fmt.Fprintf(w, "  sent:         %s, of which %s extent lists (dedup %s, compression %s, data read / sent %s)\n",
		progress.Bytes(s.BytesSent), progress.Bytes(s.ExtentBytesSent),
		ratio(s.DataBytes, s.RawBytesSent), ratio(s.RawBytesSent, s.BytesSent-s.ExtentBytesSent), ratio(s.DataBytes, s.BytesSent))
	fmt.Fprintf(w, "  duration:     %s (sending %s)\n", took.Round(10*time.Millisecond), time.Duration(s.DurationSeconds*float64(time.Second)).Round(10*time.Millisecond))
	if st != nil {
		// From the state: whatever the backup image holds, escaped.
		fmt.Fprintf(w, "  backup image: %s, snapshots %s\n", ferry.Printable(st.BackupImage.String()), ferry.Printable(strings.Join(st.Confirmed, ", ")))
	}
	if len(pruned) > 0 {
		fmt.Fprintf(w, "  pruned:       %s (source keeps %s as the next base)\n", strings.Join(pruned, ", "), m.ToSnap)
	}
}

// backupUI draws ferry backup's progress on stderr.
type backupUI struct{ noProgress bool }

func (u backupUI) Sending(snap ferry.ImageSpec) (progress.Reporter, func()) {
	meter := progress.NewMeter("Sending "+snap.String(), progress.StderrIfTerminal(u.noProgress), 200*time.Millisecond)
	return meter, meter.Finish
}

func (u backupUI) Waiting(snap ferry.ImageSpec) {
	if !u.noProgress {
		fmt.Fprintf(os.Stderr, "Waiting for the backup site to apply %s...\n", snap)
	}
}

// ratio prints a/b as "2.50x", or "-" when nothing was sent.
func ratio(a, b uint64) string {
	if b == 0 {
		if a == 0 {
			return "-"
		}
		return "all deduplicated"
	}
	return fmt.Sprintf("%.2fx", float64(a)/float64(b))
}
