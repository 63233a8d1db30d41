package main

import (
	"fmt"
	"time"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/recovery"
	"github.com/ferry-dr/ferry/internal/state"
	"github.com/spf13/cobra"
)

func newScrubCommand() *cobra.Command {
	var (
		cf         = cephFlags{site: "backup"}
		nf         natsFlags
		noProgress bool
		kf         chunkKeyFlags
		asJSON     bool
	)
	cmd := &cobra.Command{
		Use:   "scrub POOL/IMAGE[@SNAP]",
		Short: "Check the backup snapshots of a backup image against the chunk hashes they were written from",
		Long: `Read back, from each backup snapshot of POOL/IMAGE at the backup cluster (-c/--id/--keyring,
or --backup-conf/--backup-id/--backup-keyring) or only from SNAP, the extents its backup wrote, join them into the chunks they came from and compare each chunk's
SHA-256 with the hash recorded when the backup was applied (object store ferry-scrub at the
backup site's JetStream). The source site is not involved. Every chunk that no longer
matches is printed with its snapshot, offset and length; the exit status is non-zero if
there is any (exit status 3). Records of snapshots that are gone are removed. With a chunk key
(chunk.key_file, --chunk-key), the hashes are keyed: give scrub the consumer's key file.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := ferry.ParseImageSpec(args[0])
			if err != nil {
				return err
			}
			conn, err := nf.connect("ferry scrub")
			if err != nil {
				return fmt.Errorf("%w (scrub reads its records from the backup site's JetStream)", err)
			}
			defer conn.Close()
			records, err := state.OpenScrubRecords(cmd.Context(), conn.Backup)
			if err != nil {
				return err
			}
			key, err := kf.sealer()
			if err != nil {
				return err
			}
			cluster, err := cf.connect()
			if err != nil {
				return err
			}
			defer cluster.Close()
			if err := resolveLatest(cluster, &spec); err != nil {
				return err
			}

			meter := progress.NewMeter("Scrubbing "+spec.String(), progress.StderrIfTerminal(noProgress), 200*time.Millisecond)
			rep, err := recovery.Scrub(cmd.Context(), recovery.ScrubOptions{Backup: cluster, Records: records, Image: spec, ChunkKey: key}, meter)
			meter.Finish()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if err := writeJSON(out, newScrubReport(rep)); err != nil {
					return err
				}
				if rep.Clean() {
					return nil
				}
				return scrubCorrupt(rep)
			}
			for _, s := range rep.Unrecorded {
				fmt.Fprintf(out, "not checked (no scrub record): %s\n", rep.Image.AtSnap(s))
			}
			for _, name := range rep.StaleRemoved {
				fmt.Fprintf(out, "removed the record of a snapshot that is gone: %s\n", name)
			}
			if rep.Clean() {
				fmt.Fprintf(out, "clean: %s, %d snapshot(s), %d chunks, %s checked in %s\n",
					rep.Image, len(rep.Checked), rep.Chunks, progress.Bytes(rep.DataBytes), rep.Duration.Round(time.Millisecond))
				return nil
			}
			fmt.Fprintln(out, "CORRUPT chunks:")
			fmt.Fprintln(out, "SNAPSHOT\tOFFSET\tLENGTH\tCHUNK")
			for _, m := range rep.Mismatches {
				fmt.Fprintf(out, "%s\t%d\t%d\t%s\n", m.Snapshot, m.Offset, m.Length, m.Chunk)
			}
			return scrubCorrupt(rep)
		},
	}
	cf.register(cmd.Flags())
	nf.register(cmd.Flags())
	kf.register(cmd.Flags())
	cmd.Flags().BoolVar(&noProgress, "no-progress", false, "do not show progress")
	addJSONFlag(cmd, &asJSON)
	return cmd
}

// scrubCorrupt is the error of a scrub that found damage: exit 3.
func scrubCorrupt(rep recovery.ScrubReport) error {
	return withExitCode(exitDiffers, fmt.Errorf("scrub: %d chunk(s) of %s no longer match their recorded hash; the backup image is damaged at the backup site: check the cluster (ceph health detail), then take a new chain with ferry backup --resync %s",
		len(rep.Mismatches), rep.Image, rep.Image))
}
