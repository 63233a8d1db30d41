package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/metrics"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/recovery"
	"github.com/ferry-dr/ferry/internal/state"
	"github.com/spf13/cobra"
)

func newDrillCommand() *cobra.Command {
	var (
		cf         cephFlags
		nf         natsFlags
		kf         chunkKeyFlags
		asJSON     bool
		noProgress bool
		textfile   string
	)
	cmd := &cobra.Command{
		Use:   "drill POOL/IMAGE[@SNAP]",
		Short: "Prove that a backup restores: restore it into a scratch image, verify it, time it, remove it",
		Long: `A disaster-recovery drill at the backup site (-c/--id/--keyring: the backup cluster).
Restore the backup snapshot POOL/IMAGE@SNAP (default, or @latest: the latest confirmed backup of
POOL/IMAGE, the backup image or its source image's name) in full, the way ferry restore fails over, into the scratch image
POOL/IMAGE.ferry-drill-TIME; read the scratch image back once and check it against the
SHA-256 hashes recorded for the chunks of SNAP's backup when it was applied (they come
from the source site; without a record, for a snapshot backed up before Ferry recorded
them, this is said) and against the backup snapshot, block by block. Report the time to
recover (restore and verify) and remove the scratch image, also after a failure or an
interrupt; a scratch image of an earlier drill that was killed is removed first. The
backup image is only read. Run one drill of an image at a time.

Exit status: 0 when the restored image is the backup, 3 when it differs from the recorded
hashes or from the backup snapshot, 1 when the drill could not run. With
--metrics-textfile, the outcome is written for node_exporter's textfile collector
(ferry_drill_* series, labelled by image; other images' series in the file are kept).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := ferry.ParseImageSpec(args[0])
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			conn, err := nf.connect("ferry drill")
			if err != nil {
				return fmt.Errorf("%w (drill reads the state and the recorded hashes from the backup site's JetStream)", err)
			}
			defer conn.Close()
			key, err := kf.sealer()
			if err != nil {
				return err
			}
			cluster, err := cf.connect()
			if err != nil {
				return err
			}
			defer cluster.Close()
			// @latest is the default: the newest confirmed backup, which the
			// state names (the image's newest snapshot may be one being made).
			if spec.Snap == "" || spec.Snap == ferry.LatestSnap {
				book, err := state.Open(ctx, conn.Backup)
				if err != nil {
					return err
				}
				if spec, err = latestConfirmed(ctx, book, cluster, spec); err != nil {
					return err
				}
			}
			records, err := state.OpenScrubRecords(ctx, conn.Backup)
			if err != nil {
				return err
			}

			var meter *progress.Meter
			nextPhase := func(phase string) progress.Reporter {
				if meter != nil {
					meter.Finish()
				}
				label := "Restoring " + spec.String()
				if phase == "verify" {
					label = "Verifying the restored image"
				}
				meter = progress.NewMeter(label, progress.StderrIfTerminal(noProgress), 200*time.Millisecond)
				return meter
			}
			rep, err := recovery.Drill(ctx, recovery.DrillOptions{Backup: cluster, Snapshot: spec, Records: records, ChunkKey: key, Progress: nextPhase})
			if meter != nil {
				meter.Finish()
			}
			// An interrupted drill proved nothing either way: no series.
			if textfile != "" && ctx.Err() == nil {
				if werr := writeDrillMetrics(textfile, rep, err == nil && rep.Passed(), time.Now()); werr != nil {
					err = errors.Join(err, werr)
				}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if jerr := enc.Encode(newDrillView(rep, err)); jerr != nil {
					return errors.Join(err, jerr)
				}
			} else {
				printDrill(out, rep, err)
			}
			return drillOutcome(rep, err)
		},
	}
	cf.site = "backup"
	cf.register(cmd.Flags())
	nf.register(cmd.Flags())
	kf.register(cmd.Flags())
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print the outcome as JSON")
	f.BoolVar(&noProgress, "no-progress", false, "do not show progress")
	f.StringVar(&textfile, "metrics-textfile", "", "write the ferry_drill_* series to this file, for node_exporter's textfile collector (written through a rename; other images' series are kept)")
	return cmd
}

// latestConfirmed is the newest snapshot of img's backup image that the
// backup site's state lists as confirmed and the image still holds. img
// names the backup image, or the source image, whose backup image may be in
// another pool (consumer.pool_map).
func latestConfirmed(ctx context.Context, book *state.Book, c *ceph.Cluster, img ferry.ImageSpec) (ferry.ImageSpec, error) {
	states, err := book.All(ctx)
	if err != nil {
		return img, err
	}
	var st *ferry.ImageState
	for _, s := range states {
		if s.BackupImage.AtSnap("") == img || (st == nil && s.Image == img) {
			st = s
		}
	}
	if st == nil || len(st.Confirmed) == 0 {
		return img, fmt.Errorf("drill %s: the backup site's state lists no confirmed backup of it (ferry status lists the images backed up); name a snapshot instead: %s@SNAP (see rbd snap ls %s)", img, img, img)
	}
	backup := st.BackupImage.AtSnap("")
	snaps, err := c.Snapshots(backup)
	if err != nil {
		return img, fmt.Errorf("drill %s: %w", backup, err)
	}
	for i := len(st.Confirmed) - 1; i >= 0; i-- {
		for _, s := range snaps {
			if s.Name == st.Confirmed[i] {
				return backup.AtSnap(s.Name), nil
			}
		}
	}
	return img, fmt.Errorf("drill %s: the image holds none of the snapshots the state lists as confirmed (%s); name a snapshot: %s@SNAP (see rbd snap ls %s)",
		backup, strings.Join(st.Confirmed, ", "), backup, backup)
}

// drillOutcome is the error the command ends with: exitDiffers when the
// restored image is not the backup.
func drillOutcome(rep recovery.DrillReport, err error) error {
	if err != nil {
		return err
	}
	if rep.Passed() {
		return nil
	}
	return withExitCode(exitDiffers, fmt.Errorf("drill: the image restored from %s is not the backup (%d chunk(s) differ from their recorded hash, %d range(s) from the backup snapshot): the backup image is damaged at the backup site or a restore would be; check the cluster (ceph health detail), run ferry scrub %s, and take a new chain with ferry backup --resync",
		rep.Snapshot, len(rep.Mismatches), len(rep.Differences), rep.Snapshot.AtSnap("")))
}

func printDrill(out io.Writer, rep recovery.DrillReport, err error) {
	snap := ferry.Printable(rep.Snapshot.String())
	for _, l := range rep.LeftoversRemoved {
		fmt.Fprintf(out, "removed the scratch image of an earlier drill: %s\n", ferry.Printable(l.String()))
	}
	if rep.Scratch.Image == "" {
		return // the drill stopped before its restore; the error says why
	}
	scratch := ferry.Printable(rep.Scratch.String())
	switch {
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(out, "drill of %s: interrupted\n", snap)
	case err != nil:
		fmt.Fprintf(out, "drill of %s: FAILED (see the error)\n", snap)
	case rep.Passed():
		fmt.Fprintf(out, "drill of %s: passed\n", snap)
	default:
		fmt.Fprintf(out, "drill of %s: DIFFERENT\n", snap)
	}
	if rep.RestoreDuration > 0 {
		fmt.Fprintf(out, "  restore into %s: %s, %s of data, in %s\n", scratch, progress.Bytes(rep.Size), progress.Bytes(rep.RestoredBytes), rep.RestoreDuration.Round(time.Millisecond))
	}
	if err == nil {
		if rep.Recorded {
			fmt.Fprintf(out, "  verify: %d chunk(s) (%s) checked against the hashes recorded when the backup was applied, %d differ\n",
				rep.RecordedChunks, progress.Bytes(rep.RecordedBytes), len(rep.Mismatches))
		} else {
			fmt.Fprintf(out, "  verify: no hashes were recorded for %s (backed up before Ferry recorded them, or the record could not be stored): checked against the backup snapshot only\n", snap)
		}
		fmt.Fprintf(out, "  verify: compared with the backup snapshot block by block, %d range(s) differ; %s read in %s\n",
			len(rep.Differences), progress.Bytes(rep.ReadBytes), rep.VerifyDuration.Round(time.Millisecond))
		fmt.Fprintf(out, "  time to recover: %s\n", rep.RecoverDuration().Round(time.Millisecond))
	}
	for _, m := range rep.Mismatches {
		fmt.Fprintf(out, "  chunk %s at offset %d, %d bytes: does not match its recorded hash\n", ferry.Printable(m.Chunk), m.Offset, m.Length)
	}
	for _, d := range rep.Differences {
		fmt.Fprintf(out, "  offset %d, %d bytes: differs from the backup snapshot\n", d.Offset, d.Length)
	}
	if rep.SizeDiffers {
		fmt.Fprintf(out, "  the restored image's size differs from the backup snapshot's\n")
	}
	if rep.ScratchRemoved {
		fmt.Fprintf(out, "  removed the scratch image %s\n", scratch)
	}
}

// drillView is the JSON of a drill, for scripts.
type drillView struct {
	Snapshot         string          `json:"snapshot"`
	ScratchImage     string          `json:"scratch_image,omitempty"`
	Passed           bool            `json:"passed"`
	Error            string          `json:"error,omitempty"`
	SizeBytes        uint64          `json:"size_bytes"`
	RestoredBytes    uint64          `json:"restored_bytes"`
	ReadBytes        uint64          `json:"read_bytes"`
	RestoreSeconds   float64         `json:"restore_seconds"`
	VerifySeconds    float64         `json:"verify_seconds"`
	RecoverSeconds   float64         `json:"recover_seconds"`
	RecordedHashes   bool            `json:"recorded_hashes"`
	RecordedChunks   int             `json:"recorded_chunks"`
	RecordedBytes    uint64          `json:"recorded_bytes"`
	Mismatches       []drillMismatch `json:"mismatches"`
	Differences      []drillRange    `json:"differences"`
	SizeDiffers      bool            `json:"size_differs"`
	LeftoversRemoved []string        `json:"leftovers_removed"`
	ScratchRemoved   bool            `json:"scratch_removed"`
}

type drillMismatch struct {
	Chunk  string `json:"chunk"`
	Offset uint64 `json:"offset"`
	Length uint64 `json:"length"`
}

type drillRange struct {
	Offset uint64 `json:"offset"`
	Length uint64 `json:"length"`
}

func newDrillView(rep recovery.DrillReport, err error) drillView {
	v := drillView{
		Snapshot: rep.Snapshot.String(), Passed: err == nil && rep.Passed(),
		SizeBytes: rep.Size, RestoredBytes: rep.RestoredBytes, ReadBytes: rep.ReadBytes,
		RestoreSeconds: rep.RestoreDuration.Seconds(), VerifySeconds: rep.VerifyDuration.Seconds(), RecoverSeconds: rep.RecoverDuration().Seconds(),
		RecordedHashes: rep.Recorded, RecordedChunks: rep.RecordedChunks, RecordedBytes: rep.RecordedBytes,
		Mismatches: []drillMismatch{}, Differences: []drillRange{}, LeftoversRemoved: []string{},
		SizeDiffers: rep.SizeDiffers, ScratchRemoved: rep.ScratchRemoved,
	}
	if rep.Scratch.Image != "" {
		v.ScratchImage = rep.Scratch.String()
	}
	if err != nil {
		v.Error = err.Error()
	}
	for _, m := range rep.Mismatches {
		v.Mismatches = append(v.Mismatches, drillMismatch{m.Chunk, m.Offset, m.Length})
	}
	for _, d := range rep.Differences {
		v.Differences = append(v.Differences, drillRange{d.Offset, d.Length})
	}
	for _, l := range rep.LeftoversRemoved {
		v.LeftoversRemoved = append(v.LeftoversRemoved, l.String())
	}
	return v
}

// writeDrillMetrics records a drill's outcome in a node_exporter textfile,
// beside other images' drills (metrics.WriteImageGauges).
func writeDrillMetrics(path string, rep recovery.DrillReport, passed bool, at time.Time) error {
	success := 0.0
	if passed {
		success = 1
	}
	err := metrics.WriteImageGauges(path, rep.Snapshot.AtSnap("").String(), []metrics.Gauge{
		{Name: "ferry_drill_last_run_timestamp_seconds", Help: "When the last drill of the image ended, in Unix time.", Value: float64(at.Unix())},
		{Name: "ferry_drill_success", Help: "1 if the last drill restored the image and it verified, else 0.", Value: success},
		{Name: "ferry_drill_restore_seconds", Help: "Time the last drill took to restore the image.", Value: rep.RestoreDuration.Seconds()},
		{Name: "ferry_drill_verify_seconds", Help: "Time the last drill took to verify the restored image.", Value: rep.VerifyDuration.Seconds()},
		{Name: "ferry_drill_recover_seconds", Help: "Time to recover in the last drill: restore and verify.", Value: rep.RecoverDuration().Seconds()},
		{Name: "ferry_drill_restored_bytes", Help: "Size of the image the last drill restored.", Value: float64(rep.Size)},
	})
	if err != nil {
		return fmt.Errorf("--metrics-textfile: %w", err)
	}
	return nil
}
