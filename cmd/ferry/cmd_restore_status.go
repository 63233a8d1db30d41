package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/recovery"
	"github.com/ferry-dr/ferry/internal/sign"
	"github.com/spf13/cobra"
)

func newRestoreStatusCommand() *cobra.Command {
	var (
		nf         natsFlags
		asJSON     bool
		sourceKeys string
	)
	cmd := &cobra.Command{
		Use:   "status JOB [--json]",
		Short: "Show the state of a restore into the source site (queued, running, done or failed)",
		Long: `Show where restore job JOB (the id ferry restore --to source:POOL/IMAGE printed) is:
queued (the source site's publisher has not taken it yet), running (with the bytes
applied so far), done, or failed (with the error and what to do). It reads the job's
state from the backup site's JetStream, from either site; a job's state is kept 7 days.
The exit status is non-zero when the restore failed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := ferry.ValidateJobID(args[0]); err != nil {
				return withExitCode(exitUsage, err)
			}
			trust, err := sign.ParseTrust(sourceKeys)
			if err != nil {
				return fmt.Errorf("--trusted-keys: %w", err)
			}
			conn, err := nf.connect("ferry restore status")
			if err != nil {
				return err
			}
			defer conn.Close()
			st, err := recovery.ReadRestoreStatus(cmd.Context(), conn.Backup, args[0], trust)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				err = printRestoreStatusJSON(out, st)
			} else {
				err = printRestoreStatus(out, st, time.Now())
			}
			if err == nil && st.State == ferry.RestoreFailed {
				err = errors.New(restoreFailure(st))
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print JSON for scripts")
	f.StringVar(&sourceKeys, "trusted-keys", "", "comma-separated public keys of the source site; a state after queued signed by none is refused (default: none, every state is believed)")
	bindConfig(f, "trusted-keys", "consumer.trusted_keys")
	nf.register(f)
	return cmd
}

// restoreFailure is the error of a failed restore, as the source site said it.
func restoreFailure(st ferry.RestoreStatus) string {
	why := "no reason given"
	if st.Outcome != nil && st.Outcome.Error != "" {
		why = st.Outcome.Error
	}
	return fmt.Sprintf("restore job %s failed: %s", st.JobID, ferry.Printable(why))
}

// restoreStatusView is a restore job's state as --json prints it.
type restoreStatusView struct {
	JobID           string    `json:"job_id"`
	State           string    `json:"state"`
	Snapshot        string    `json:"snapshot"`
	Target          string    `json:"target"`
	Updated         time.Time `json:"updated"`
	DoneBytes       uint64    `json:"done_bytes"`
	TotalBytes      uint64    `json:"total_bytes"`
	Error           string    `json:"error,omitempty"`
	Refused         bool      `json:"refused,omitempty"`
	RolledBack      bool      `json:"rolled_back,omitempty"`
	DataBytes       uint64    `json:"data_bytes,omitempty"`
	ZeroBytes       uint64    `json:"zero_bytes,omitempty"`
	DurationSeconds float64   `json:"duration_seconds,omitempty"`
	RestoredSnap    string    `json:"restored_snapshot,omitempty"`
}

func printRestoreStatusJSON(out io.Writer, st ferry.RestoreStatus) error {
	v := restoreStatusView{JobID: st.JobID, State: string(st.State), Snapshot: st.Snapshot.String(), Target: st.Target.String(),
		Updated: st.Time, DoneBytes: st.DoneBytes, TotalBytes: st.TotalBytes}
	if o := st.Outcome; o != nil {
		v.Error, v.Refused, v.RolledBack = o.Error, o.Refused, o.RolledBack
		v.DataBytes, v.ZeroBytes, v.DurationSeconds, v.RestoredSnap = o.DataBytes, o.ZeroBytes, o.DurationSeconds, o.Target.Snap
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printRestoreStatus(out io.Writer, st ferry.RestoreStatus, now time.Time) error {
	p := ferry.Printable
	fmt.Fprintf(out, "restore job %s: %s\n", p(st.JobID), p(string(st.State)))
	fmt.Fprintf(out, "  %s into %s at the source site (%s)\n", p(st.Snapshot.String()), p(st.Target.String()), progress.Bytes(st.TotalBytes))
	age := now.Sub(st.Time).Round(time.Second)
	switch st.State {
	case ferry.RestoreQueued:
		fmt.Fprintf(out, "  queued %s ago; the source site's publisher has not taken it yet (is ferry publisher run running there and connected?)\n", age)
	case ferry.RestoreRunning:
		fmt.Fprintf(out, "  %s applied, as of %s ago\n", progress.Bytes(st.DoneBytes), age)
	case ferry.RestoreDone, ferry.RestoreFailed:
		if o := st.Outcome; o != nil && st.State == ferry.RestoreDone {
			fmt.Fprintf(out, "  %s written, %s zeroed at the source site in %s, %s ago\n", progress.Bytes(o.DataBytes), progress.Bytes(o.ZeroBytes),
				time.Duration(o.DurationSeconds*float64(time.Second)).Round(time.Millisecond), age)
			if o.RolledBack {
				fmt.Fprintf(out, "  %s was rolled back first (its later writes are gone)\n", p(o.Target.AtSnap("").String()))
			}
			if o.Target.Snap != "" {
				fmt.Fprintf(out, "  %s now holds snapshot %s, shared with the backup image\n", p(o.Target.AtSnap("").String()), p(o.Target.Snap))
			}
		} else {
			fmt.Fprintf(out, "  ended %s ago\n", age)
		}
	}
	return nil
}
