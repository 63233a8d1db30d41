package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/recovery"
	"github.com/spf13/cobra"
)

func newLsCommand() *cobra.Command {
	var (
		cf     cephFlags
		asJSON bool
		pools  string
	)
	cmd := &cobra.Command{
		Use:   "ls [POOL/IMAGE] [--pools POOL,...] [--json]",
		Short: "List the restore points of a backup image at the backup site",
		Long: `List the Ferry snapshots of the backup image POOL/IMAGE at the backup site (the cluster
of -c/--id/--keyring), oldest first: the restore points restore, verify and scrub take.
For each: when the source snapshot was taken, its consistency (quiesced: the guest's
filesystems were frozen through its agent; crash: taken without a freeze; unknown:
backed up by a Ferry that did not record it), the image size at the snapshot, the
bytes its backup changed (full: the start of a chain), and which one is the latest,
the one POOL/IMAGE@latest names. Only the image is read: NATS is not needed.

Without POOL/IMAGE, list the images of the backup pools (--pools, default
consumer.pools) that hold restore points, with their count and the latest.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var spec ferry.ImageSpec
			if len(args) == 1 {
				var err error
				if spec, err = ferry.ParseImageSpec(args[0]); err != nil {
					return err
				}
				if spec.Snap != "" {
					return withExitCode(exitUsage, fmt.Errorf("ferry ls %s: name the image without a snapshot (ferry ls %s)", spec, spec.AtSnap("")))
				}
			} else if len(splitList(pools)) == 0 {
				return withExitCode(exitUsage, fmt.Errorf("ferry ls: name a backup image (POOL/IMAGE), or the pools to list with --pools (default: consumer.pools in the config)"))
			}
			cluster, err := cf.connect()
			if err != nil {
				return err
			}
			defer cluster.Close()
			out := cmd.OutOrStdout()
			if len(args) == 0 {
				all, err := recovery.AllRestorePoints(cluster, splitList(pools))
				if err != nil {
					return err
				}
				if asJSON {
					return printImagesJSON(out, all)
				}
				return printImages(out, all)
			}
			points, err := recovery.RestorePoints(cluster, spec)
			if err != nil {
				return err
			}
			if asJSON {
				return printRestorePointsJSON(out, spec, points)
			}
			return printRestorePoints(out, spec, points)
		},
	}
	cf.site = "backup" // restore points are the backup site's snapshots
	cf.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	cmd.Flags().StringVar(&pools, "pools", "", "without POOL/IMAGE: comma-separated backup pools to list (default: consumer.pools)")
	bindConfig(cmd.Flags(), "pools", "consumer.pools")
	return cmd
}

// restorePointView is a restore point as ferry ls --json prints it.
type restorePointView struct {
	Snapshot     string     `json:"snapshot"`
	Spec         string     `json:"spec"` // POOL/IMAGE@SNAPSHOT, as restore takes it
	Taken        *time.Time `json:"taken,omitempty"`
	Created      time.Time  `json:"created"`
	Consistency  string     `json:"consistency"`
	SizeBytes    uint64     `json:"size_bytes"`
	ChangedBytes *uint64    `json:"changed_bytes,omitempty"`
	Full         bool       `json:"full"`
	Latest       bool       `json:"latest"`
}

func consistencyOf(p recovery.RestorePoint) string {
	if p.Info.Consistency == "" {
		return "unknown"
	}
	return string(p.Info.Consistency)
}

func printRestorePointsJSON(out io.Writer, image ferry.ImageSpec, points []recovery.RestorePoint) error {
	views := make([]restorePointView, 0, len(points))
	for _, p := range points {
		v := restorePointView{Snapshot: p.Snapshot.Snap, Spec: p.Snapshot.String(), Created: p.Created, Consistency: consistencyOf(p),
			SizeBytes: p.Size, ChangedBytes: p.Info.ChangedBytes, Full: p.Info.Full, Latest: p.Latest}
		if !p.Taken.IsZero() {
			v.Taken = &p.Taken
		}
		views = append(views, v)
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Image         string             `json:"image"`
		RestorePoints []restorePointView `json:"restore_points"`
	}{image.String(), views})
}

func printRestorePoints(out io.Writer, image ferry.ImageSpec, points []recovery.RestorePoint) error {
	if len(points) == 0 {
		_, err := fmt.Fprintf(out, "%s has no restore points yet (no Ferry snapshot)\n", ferry.Printable(image.String()))
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SNAPSHOT\tTAKEN\tCONSISTENCY\tSIZE\tCHANGED\t")
	for _, p := range points {
		taken := p.Taken
		if taken.IsZero() {
			taken = p.Created
		}
		changed := "-"
		if p.Info.ChangedBytes != nil {
			changed = progress.Bytes(*p.Info.ChangedBytes)
		}
		if p.Info.Full {
			changed += " (full)"
		}
		latest := ""
		if p.Latest {
			latest = "latest"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ferry.Printable(p.Snapshot.Snap), taken.UTC().Format(time.RFC3339), consistencyOf(p),
			progress.Bytes(p.Size), changed, latest)
	}
	return tw.Flush()
}

// imagePointsView is a backup image as ferry ls --json lists it without
// an image.
type imagePointsView struct {
	Image             string    `json:"image"`
	RestorePointCount int       `json:"restore_point_count"`
	Latest            string    `json:"latest"` // POOL/IMAGE@SNAPSHOT
	LatestTaken       time.Time `json:"latest_taken"`
	LatestConsistency string    `json:"latest_consistency"`
	LatestSizeBytes   uint64    `json:"latest_size_bytes"`
}

// latestOf is the newest of points (there is at least one), with the
// time it was taken (or, without one in its name, made).
func latestOf(points []recovery.RestorePoint) (recovery.RestorePoint, time.Time) {
	p := points[len(points)-1]
	if p.Taken.IsZero() {
		return p, p.Created
	}
	return p, p.Taken
}

func printImagesJSON(out io.Writer, all []recovery.ImagePoints) error {
	views := make([]imagePointsView, 0, len(all))
	for _, ip := range all {
		p, taken := latestOf(ip.Points)
		views = append(views, imagePointsView{Image: ip.Image.String(), RestorePointCount: len(ip.Points), Latest: p.Snapshot.String(),
			LatestTaken: taken, LatestConsistency: consistencyOf(p), LatestSizeBytes: p.Size})
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		Images []imagePointsView `json:"images"`
	}{views})
}

func printImages(out io.Writer, all []recovery.ImagePoints) error {
	if len(all) == 0 {
		_, err := fmt.Fprintln(out, "no backup image with restore points in these pools")
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tRESTORE POINTS\tLATEST\tTAKEN\tCONSISTENCY")
	for _, ip := range all {
		p, taken := latestOf(ip.Points)
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", ferry.Printable(ip.Image.String()), len(ip.Points), ferry.Printable(p.Snapshot.Snap),
			taken.UTC().Format(time.RFC3339), consistencyOf(p))
	}
	return tw.Flush()
}
