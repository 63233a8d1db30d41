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
	)
	cmd := &cobra.Command{
		Use:   "ls POOL/IMAGE [--json]",
		Short: "List the restore points of a backup image at the backup site",
		Long: `List the Ferry snapshots of the backup image POOL/IMAGE at the backup site (the cluster
of -c/--id/--keyring), oldest first: the restore points restore, verify and scrub take.
For each: when the source snapshot was taken, its consistency (quiesced: the guest's
filesystems were frozen through its agent; crash: taken without a freeze; unknown:
backed up by a Ferry that did not record it), the image size at the snapshot, the
bytes its backup changed (full: the start of a chain), and which one is the latest,
the one POOL/IMAGE@latest names. Only the image is read: NATS is not needed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := ferry.ParseImageSpec(args[0])
			if err != nil {
				return err
			}
			if spec.Snap != "" {
				return withExitCode(exitUsage, fmt.Errorf("ferry ls %s: name the image without a snapshot (ferry ls %s)", spec, spec.AtSnap("")))
			}
			cluster, err := cf.connect()
			if err != nil {
				return err
			}
			defer cluster.Close()
			points, err := recovery.RestorePoints(cluster, spec)
			if err != nil {
				return err
			}
			if asJSON {
				return printRestorePointsJSON(cmd.OutOrStdout(), spec, points)
			}
			return printRestorePoints(cmd.OutOrStdout(), spec, points)
		},
	}
	cf.site = "backup" // restore points are the backup site's snapshots
	cf.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
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
