package main

import (
	"fmt"
	"time"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/recovery"
	"github.com/ferry-dr/ferry/internal/sign"
	"github.com/spf13/cobra"
)

func newRestoreCommand() *cobra.Command {
	var (
		from          = cephFlags{site: "backup"} // the backup snapshot is read at the backup site
		to            = cephFlags{site: "source"} // over librados: only when named
		nf            natsFlags
		target        string
		fromSnap      string
		forceRollback bool
		noProgress    bool
		noWait        bool
		timeout       time.Duration
		restoreKey    string
		sourceKeys    string
		kf            chunkKeyFlags
		asJSON        bool
	)
	cmd := &cobra.Command{
		Use:   "restore POOL/IMAGE@SNAP --to [source:]POOL/TARGET [--from-snap COMMON [--force-rollback]] [--source-conf ...]",
		Short: "Restore a backup snapshot into a new image (failover) or back into the primary image (failback)",
		Long: `Copy the backup snapshot POOL/IMAGE@SNAP (on the backup cluster: -c/--id/--keyring, or
--backup-conf/--backup-id/--backup-keyring) into POOL/TARGET, on the same cluster or, with
--source-conf/--source-id/--source-keyring (or --source-cluster), on the source site's
cluster (back to the primary site, straight over librados, no pipeline needed). The
backup image is only read.

Without --from-snap, TARGET must not exist: it is created, filled from the snapshot in
full, and left without snapshots, ready to attach.

With --from-snap COMMON, TARGET must exist and hold snapshot COMMON, which the backup
image holds too: only the changes COMMON -> SNAP are shipped. TARGET is rolled back to
COMMON first; if its head was written after COMMON, the restore refuses unless
--force-rollback (those writes are lost). TARGET ends with snapshot SNAP, so the next
backup can start incrementally from it.

With --to source:POOL/TARGET, the restore goes to the source site over JetStream, the
backup pipeline in reverse: this command (at the backup site) stores the diff in the
backup site's chunk store (chunks already there are not stored again) and queues a job;
the source site's publisher daemon (ferry publisher run) checks and applies it and
answers. Only the NATS leafnode needs to cross the WAN; the backup site needs no access
to the source site's Ceph monitors. The command waits for the answer unless --no-wait.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			snapSpec, err := ferry.ParseImageSpec(args[0])
			if err != nil {
				return err
			}
			if target == "" {
				return withExitCode(exitUsage, fmt.Errorf("--to POOL/IMAGE is required: the image to restore into"))
			}
			if forceRollback && fromSnap == "" {
				return withExitCode(exitUsage, fmt.Errorf("--force-rollback only applies with --from-snap"))
			}
			if fromSnap != "" {
				if err := ferry.ValidateSnapName(fromSnap); err != nil {
					return fmt.Errorf("--from-snap: %w", err)
				}
			}
			toSource, targetSpec, err := parseRestoreTarget(target)
			if err != nil {
				return err
			}
			if toSource && to.named() {
				return withExitCode(exitUsage, fmt.Errorf("--to source:%s goes over JetStream to the source site's publisher; --source-conf/--source-id/--source-keyring write over librados: choose one", targetSpec))
			}
			if !toSource && (noWait || cmd.Flags().Changed("timeout")) {
				return withExitCode(exitUsage, fmt.Errorf("--no-wait and --timeout only apply to a restore to the source site (--to source:POOL/IMAGE)"))
			}
			if err := checkCeph(&from, &to); err != nil {
				return err
			}
			fromCluster, err := from.connect()
			if err != nil {
				return err
			}
			defer fromCluster.Close()
			if err := resolveLatest(fromCluster, &snapSpec); err != nil {
				return err
			}
			if toSource {
				signer, err := sign.LoadKey(restoreKey)
				if err != nil {
					return fmt.Errorf("--restore-key: %w", err)
				}
				trust, err := sign.ParseTrust(sourceKeys)
				if err != nil {
					return fmt.Errorf("--trusted-keys: %w", err)
				}
				key, err := kf.sealer()
				if err != nil {
					return err
				}
				return restoreToSource(cmd.Context(), cmd.OutOrStdout(), fromCluster, &nf, recovery.SendOptions{
					Snapshot: snapSpec, Target: targetSpec, FromSnap: fromSnap, ForceRollback: forceRollback, Signer: signer, Trust: trust, ChunkKey: key,
				}, restoreWait{noWait: noWait, timeout: timeout, noProgress: noProgress, json: asJSON})
			}
			toCluster := fromCluster
			if to.named() {
				if toCluster, err = to.connect(); err != nil {
					return fmt.Errorf("target cluster: %w", err)
				}
				defer toCluster.Close()
			}
			meter := progress.NewMeter("Restoring "+snapSpec.String(), progress.StderrIfTerminal(noProgress), 200*time.Millisecond)
			res, err := recovery.Restore(cmd.Context(), recovery.RestoreOptions{
				From: fromCluster, Snapshot: snapSpec, To: toCluster, Target: targetSpec,
				FromSnap: fromSnap, ForceRollback: forceRollback,
			}, meter)
			meter.Finish()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				site := "backup"
				if to.named() {
					site = "source"
				}
				return writeJSON(out, newRestoreReport(res, site))
			}
			what := "in full"
			if res.FromSnap != "" {
				what = fmt.Sprintf("changes since %s", res.FromSnap)
			}
			fmt.Fprintf(out, "restored %s into %s (%s, %s)\n", res.Snapshot, res.Target.AtSnap(""), progress.Bytes(res.Size), what)
			fmt.Fprintf(out, "  data written: %s, zeroed: %s, in %s\n", progress.Bytes(res.DataBytes), progress.Bytes(res.ZeroBytes), res.Duration.Round(time.Millisecond))
			if res.RolledBack {
				fmt.Fprintf(out, "  %s was rolled back to %s first (its later writes are gone)\n", res.Target.AtSnap(""), res.FromSnap)
			}
			if res.Target.Snap != "" {
				fmt.Fprintf(out, "  %s now holds snapshot %s, shared with the backup image\n", res.Target.AtSnap(""), res.Target.Snap)
			}
			return nil
		},
	}
	from.register(cmd.Flags())
	to.registerSite(cmd.Flags(), false, ": restore into it over librados (default: into the backup cluster)")
	to.deprecated("to-conf", optConf)
	to.deprecated("to-id", optID)
	to.deprecated("to-keyring", optKeyring)
	f := cmd.Flags()
	f.StringVar(&target, "to", "", "POOL/IMAGE to restore into; source:POOL/IMAGE for an image of the source site, over JetStream")
	f.StringVar(&fromSnap, "from-snap", "", "incremental: ship only the changes since this snapshot, which both images hold")
	f.BoolVar(&forceRollback, "force-rollback", false, "with --from-snap: discard writes the target took after that snapshot")
	f.BoolVar(&noProgress, "no-progress", false, "do not show progress")
	f.BoolVar(&noWait, "no-wait", false, "with --to source:...: return once the restore job is queued, without waiting for the source site")
	f.DurationVar(&timeout, "timeout", time.Hour, "with --to source:...: how long to wait for the source site's answer")
	f.StringVar(&restoreKey, "restore-key", "", "with --to source:...: the restore identity's nkeys seed file, which signs the job (the source site trusts its public key)")
	bindConfig(f, "restore-key", "consumer.restore_key")
	f.StringVar(&sourceKeys, "trusted-keys", "", "with --to source:...: comma-separated public keys of the source site; its answers signed by none are ignored (default: none, every answer is believed)")
	bindConfig(f, "trusted-keys", "consumer.trusted_keys")
	nf.register(f)
	kf.register(f)
	addJSONFlag(cmd, &asJSON)
	cmd.AddCommand(newRestoreStatusCommand())
	return cmd
}
