package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/recovery"
)

// sourceSitePrefix in --to names an image of the source site, reached over
// JetStream through the source site's publisher daemon.
const sourceSitePrefix = "source:"

// parseRestoreTarget parses --to: POOL/IMAGE, or source:POOL/IMAGE.
func parseRestoreTarget(s string) (toSource bool, spec ferry.ImageSpec, err error) {
	if s == "" {
		return false, spec, fmt.Errorf("--to POOL/IMAGE is required: the image to restore into")
	}
	rest, toSource := strings.CutPrefix(s, sourceSitePrefix)
	if site, _, ok := strings.Cut(rest, ":"); ok && !strings.Contains(site, "/") {
		return false, spec, fmt.Errorf("--to %q: the only site to name is %q (over JetStream); for the source cluster over librados use --source-conf or --source-cluster", s, sourceSitePrefix)
	}
	spec, err = ferry.ParseImageSpec(rest)
	if err != nil {
		return false, spec, fmt.Errorf("--to: %w", err)
	}
	return toSource, spec, nil
}

type restoreWait struct {
	noWait     bool
	timeout    time.Duration
	noProgress bool
	json       bool // print the outcome as JSON
}

// restoreToSource runs a restore into the source site over JetStream: export
// and store here, then wait for the source site's answer.
func restoreToSource(ctx context.Context, out io.Writer, backup *ceph.Cluster, nf *natsFlags, o recovery.SendOptions, w restoreWait) error {
	start := time.Now()
	conn, err := nf.connect("ferry restore")
	if err != nil {
		return err
	}
	defer conn.Close()
	o.Backup, o.Bus = backup, conn
	meter := progress.NewMeter("Exporting "+o.Snapshot.String()+" for the source site", progress.StderrIfTerminal(w.noProgress), 200*time.Millisecond)
	rr, err := recovery.SendRestore(ctx, o, meter)
	meter.Finish()
	if err != nil {
		return err
	}
	defer rr.Close()
	report := restoreReport{Snapshot: rr.Job.Snapshot.String(), Target: rr.Job.Target.String(), Site: "source", Kind: restoreKind(o.FromSnap),
		FromSnap: o.FromSnap, Size: rr.Job.Size, JobID: rr.Job.ID, Queued: w.noWait}
	if w.noWait && w.json {
		return writeJSON(out, report)
	}
	if w.noWait {
		fmt.Fprintf(out, "queued restore job %s: %s into %s at the source site; not waiting (--no-wait): ferry restore status %s follows it\n",
			rr.Job.ID, rr.Job.Snapshot, rr.Job.Target, rr.Job.ID)
		if rr.StatusErr != nil {
			fmt.Fprintf(out, "  but ferry restore status cannot follow it (the source site's publisher logs the outcome): %v\n", rr.StatusErr)
		}
		printSendSummary(out, rr.Stats)
		return nil
	}
	if !w.noProgress {
		fmt.Fprintf(os.Stderr, "Waiting for the source site to apply the restore into %s...\n", o.Target)
	}
	wctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	res, err := rr.Wait(wctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("the source site did not answer restore job %s within %s; is `ferry publisher run` running there and connected to this site's NATS? The job stays queued and runs when it is (for 7 days)", rr.Job.ID, w.timeout)
	}
	if err != nil {
		return err
	}
	if w.json {
		report.Target, report.RolledBack = res.Target.String(), res.RolledBack
		report.DataBytes, report.ZeroBytes = res.DataBytes, res.ZeroBytes
		report.DurationSeconds = time.Since(start).Seconds()
		return writeJSON(out, report)
	}
	what := "in full, as a new image without snapshots"
	if o.FromSnap != "" {
		what = "changes since " + o.FromSnap
	}
	fmt.Fprintf(out, "restored %s into %s at the source site (%s, %s)\n", rr.Job.Snapshot, res.Target.AtSnap(""), progress.Bytes(rr.Job.Size), what)
	printSendSummary(out, rr.Stats)
	fmt.Fprintf(out, "  source site:  %s written, %s zeroed, in %s\n", progress.Bytes(res.DataBytes), progress.Bytes(res.ZeroBytes),
		time.Duration(res.DurationSeconds*float64(time.Second)).Round(time.Millisecond))
	if res.RolledBack {
		fmt.Fprintf(out, "  %s was rolled back to %s first (its later writes are gone)\n", res.Target.AtSnap(""), o.FromSnap)
	}
	if res.Target.Snap != "" {
		fmt.Fprintf(out, "  %s now holds snapshot %s, shared with the backup image\n", res.Target.AtSnap(""), res.Target.Snap)
	}
	fmt.Fprintf(out, "  duration:     %s\n", time.Since(start).Round(10*time.Millisecond))
	return nil
}

func printSendSummary(out io.Writer, s recovery.SendStats) {
	fmt.Fprintf(out, "  backup site:  %s of data read, %s stored (%d chunks, %d already at the site), in %s\n",
		progress.Bytes(s.DataBytes), progress.Bytes(s.BytesStored()), s.Chunks, s.Chunks-s.ChunksSent, s.Duration.Round(time.Millisecond))
}
