package main

import (
	"fmt"
	"time"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/recovery"
	"github.com/spf13/cobra"
)

func newVerifyCommand() *cobra.Command {
	var (
		src         = cephFlags{site: "source"}
		bak         = cephFlags{site: "backup"}
		backupImage string
		noProgress  bool
		asJSON      bool
	)
	cmd := &cobra.Command{
		Use:   "verify POOL/IMAGE@SNAP [--source-conf ...] [--backup-conf ...] [--backup-image POOL/IMAGE]",
		Short: "Compare a backup snapshot with its source snapshot, by content",
		Long: `Read POOL/IMAGE@SNAP at the source cluster (-c/--id/--keyring, or --source-conf/--source-id/
--source-keyring) and the same snapshot of the backup image at the backup cluster
(--backup-conf/--backup-id/--backup-keyring, default: ceph.backup of the config) side by side,
hash both per 4 KiB block (SHA-256) and compare them 4 MiB at a time. Ranges both sides
know as holes are compared as zeros without reading. Every differing range is printed
(offset and length, at 4 KiB grain); the exit status is 3 if there is any.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			srcSpec, err := ferry.ParseImageSpec(args[0])
			if err != nil {
				return err
			}
			bakSpec := srcSpec
			if backupImage != "" {
				if bakSpec, err = ferry.ParseImageSpec(backupImage); err != nil {
					return fmt.Errorf("--backup-image: %w", err)
				}
				bakSpec = bakSpec.AtSnap(srcSpec.Snap)
			}
			if err := checkCeph(&src, &bak); err != nil {
				return err
			}
			srcCluster, err := src.connect()
			if err != nil {
				return fmt.Errorf("source cluster: %w", err)
			}
			defer srcCluster.Close()
			bakCluster, err := bak.connect()
			if err != nil {
				return fmt.Errorf("backup cluster: %w", err)
			}
			defer bakCluster.Close()
			if err := resolveLatest(bakCluster, &bakSpec, &srcSpec); err != nil {
				return err
			}

			meter := progress.NewMeter("Verifying "+srcSpec.String(), progress.StderrIfTerminal(noProgress), 200*time.Millisecond)
			rep, err := recovery.Verify(cmd.Context(), recovery.VerifyOptions{
				Source: srcCluster, SourceSnap: srcSpec, Backup: bakCluster, BackupSnap: bakSpec,
			}, meter)
			meter.Finish()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				if err := writeJSON(out, newVerifyReport(rep)); err != nil {
					return err
				}
			}
			if rep.Identical() {
				if asJSON {
					return nil
				}
				fmt.Fprintf(out, "identical: %s (source) and %s (backup), %s, %s of data read on both sides in %s\n",
					rep.SourceSnap, rep.BackupSnap, progress.Bytes(rep.SourceSize), progress.Bytes(rep.DataBytes), rep.Duration.Round(time.Millisecond))
				return nil
			}
			if !asJSON {
				fmt.Fprintf(out, "DIFFERENT: %s (source, %d bytes) and %s (backup, %d bytes)\n", rep.SourceSnap, rep.SourceSize, rep.BackupSnap, rep.BackupSize)
				fmt.Fprintln(out, "OFFSET\tLENGTH")
				for _, d := range rep.Differences {
					fmt.Fprintf(out, "%d\t%d\n", d.Offset, d.Length)
				}
			}
			return withExitCode(exitDiffers, fmt.Errorf("verify: %d range(s), %s in all, differ; take a new full backup of %s (ferry backup --resync) and find the cause (ferry status, OSD health)",
				len(rep.Differences), progress.Bytes(rep.DifferentBytes()), srcSpec.AtSnap("")))
		},
	}
	src.register(cmd.Flags())
	bak.registerSite(cmd.Flags(), true, " (default: ceph.backup.conf of the configuration)")
	f := cmd.Flags()
	f.StringVar(&backupImage, "backup-image", "", "backup image, if its name differs from the source's (default: the same POOL/IMAGE)")
	f.BoolVar(&noProgress, "no-progress", false, "do not show progress")
	addJSONFlag(cmd, &asJSON)
	return cmd
}
