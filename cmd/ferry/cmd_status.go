package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/health"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/spf13/cobra"
)

// defaultRPO suits daily backups, with an hour for one to run late.
const defaultRPO = 25 * time.Hour

func newStatusCommand() *cobra.Command {
	var (
		nf      natsFlags
		asJSON  bool
		streams bool
		rpo     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status [POOL/IMAGE]",
		Short: "Show each image's backups, the daemons and what cannot be reached; exit 4 when unhealthy",
		Long: `Show each image the backup site knows: its last confirmed backup and its
age, a backup running (with the bytes applied so far), retrying (attempt and
last error) or given up (its error and what to do); the active consumer; each
daemon's heartbeat and what it cannot reach, since when. With POOL/IMAGE,
that image in detail.

Exit status: 0 when all is healthy; 4 when an image is failing or past its
RPO (--rpo), no consumer is active, a daemon went silent, or a site cannot
be reached (by a daemon or by this command); 1 when the status cannot be
read. The report is printed in each case.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := health.ReadOptions{RPO: rpo}
			if len(args) == 1 {
				img, err := ferry.ParseImageSpec(args[0])
				if err != nil {
					return withExitCode(exitUsage, err)
				}
				if img.Snap != "" {
					return withExitCode(exitUsage, fmt.Errorf("%s names a snapshot: give POOL/IMAGE", args[0]))
				}
				o.Image = &img
			}
			conn, err := nf.connect("ferry status")
			if err != nil {
				return err
			}
			defer conn.Close()
			if streams {
				return printLag(cmd.OutOrStdout(), bus.ReadLag(cmd.Context(), conn), asJSON)
			}
			r, err := health.Read(cmd.Context(), conn, o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case asJSON:
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				err = enc.Encode(r)
			case o.Image != nil:
				err = printImageDetail(out, r)
			default:
				err = printReport(out, r)
			}
			if err != nil {
				return err
			}
			if !r.Healthy {
				return withExitCode(exitUnhealthy, fmt.Errorf("unhealthy: %d problem(s), listed in the report", len(r.Problems)))
			}
			return nil
		},
	}
	nf.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	cmd.Flags().BoolVar(&streams, "streams", false, "show JetStream streams and the daemons' consumer lag and redeliveries instead")
	cmd.Flags().DurationVar(&rpo, "rpo", defaultRPO, "recovery point objective: an image whose last confirmed backup is older is unhealthy (0: not checked)")
	return cmd
}

// printReport prints the table of images, the daemons and the problems.
// Every text here comes from messages, records and the state: printed
// raw, a name or error could drive the terminal.
func printReport(out io.Writer, r *health.Report) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tSTATUS\tLAST CONFIRMED SNAPSHOT\tAGE\tCONSISTENCY\tLAST ERROR")
	for _, img := range r.Images {
		errText := ferry.Printable(img.LastError)
		if len(errText) > 80 {
			errText = truncate(errText, 77) + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ferry.Printable(img.Image), statusText(&img),
			orDash(ferry.Printable(img.LastSnapshot)), ageText(img.AgeSeconds), orDash(ferry.Printable(img.Consistency)), orDash(errText))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// A failing backup's error ends with what to do; the table cuts it.
	for _, img := range r.Images {
		if errText := ferry.Printable(img.LastError); img.Failing() && len(errText) > 80 {
			fmt.Fprintf(out, "\n%s: %s\n", ferry.Printable(img.Image), errText)
		}
		if img.Action != "" && (img.Failing() || img.PastRPO) {
			fmt.Fprintf(out, "\n%s: what to do: %s\n", ferry.Printable(img.Image), ferry.Printable(img.Action))
		}
	}
	printSites(out, r)
	return nil
}

// printImageDetail prints the report's one image, line by line.
func printImageDetail(out io.Writer, r *health.Report) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, img := range r.Images {
		line := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
		line("image", ferry.Printable(img.Image))
		line("backup image", orDash(ferry.Printable(img.BackupImage)))
		line("status", statusText(&img))
		line("last confirmed snapshot", orDash(ferry.Printable(img.LastSnapshot)))
		line("confirmed at", timeText(img.LastSuccess))
		line("age", ageText(img.AgeSeconds)+rpoText(img.PastRPO, r.RPOSeconds))
		line("consistency", orDash(ferry.Printable(img.Consistency)))
		points := fmt.Sprint(img.RestorePoints)
		if n := len(img.Snapshots); n > 0 {
			points += fmt.Sprintf(" (oldest %s, newest %s)", ferry.Printable(img.Snapshots[0]), ferry.Printable(img.Snapshots[n-1]))
		}
		line("restore points", points)
		line("last attempt", timeText(img.LastAttempt))
		if w := img.Work; w != nil {
			line("backup in work", fmt.Sprintf("%s (attempt %d of at most %d, started %s, %s applied)", ferry.Printable(w.Snapshot),
				w.Attempt, w.MaxAttempts, w.Started.Format(time.RFC3339), progress.Bytes(w.BytesDone)))
		}
		line("last error", orDash(ferry.Printable(img.LastError)))
		line("what to do", orDash(ferry.Printable(img.Action)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	printSites(out, r)
	return nil
}

// printSites prints the active consumer, the daemons and the problems.
func printSites(out io.Writer, r *health.Report) {
	switch {
	case !r.BackupSiteRead:
		fmt.Fprintln(out, "\nactive consumer: unknown (the backup site does not answer)")
	case r.ActiveConsumer != "":
		fmt.Fprintf(out, "\nactive consumer: %s\n", ferry.Printable(r.ActiveConsumer))
	default:
		fmt.Fprintln(out, "\nactive consumer: none (is `ferry consumer run` running at the backup site?)")
	}
	for _, d := range r.Daemons {
		fmt.Fprintf(out, "%s on %s: %s\n", ferry.Printable(d.Role), ferry.Printable(d.Host), daemonText(d, r.Time))
	}
	if r.Healthy {
		fmt.Fprintln(out, "\nhealthy")
		return
	}
	fmt.Fprintln(out, "\nunhealthy:")
	for _, p := range r.Problems {
		fmt.Fprintf(out, "  - %s\n", ferry.Printable(p))
	}
}

func daemonText(d health.Daemon, now time.Time) string {
	switch d.State {
	case "stopped":
		return "stopped at " + d.Stopped.Format(time.RFC3339)
	case "silent":
		return "silent since " + d.Heartbeat.Format(time.RFC3339) + " (its last heartbeat)"
	}
	s := fmt.Sprintf("running since %s, heartbeat %s ago", d.Started.Format(time.RFC3339), now.Sub(d.Heartbeat).Round(time.Second))
	if u := d.Unreachable; u != nil {
		s += fmt.Sprintf("; %s unreachable since %s (for %s): %s", ferry.Printable(u.What), u.Since.Format(time.RFC3339),
			now.Sub(u.Since).Round(time.Second), ferry.Printable(u.Error))
	} else if u := d.LastOutage; u != nil && u.Until != nil {
		s += fmt.Sprintf("; %s was unreachable from %s to %s", ferry.Printable(u.What), u.Since.Format(time.RFC3339), u.Until.Format(time.RFC3339))
	}
	return s
}

// statusText is the status column: what the consumer is doing with it.
func statusText(img *health.Image) string {
	w := img.Work
	switch {
	case w != nil && img.Status == "running":
		return "running, " + progress.Bytes(w.BytesDone) + " applied"
	case w != nil && img.Status == "retrying":
		return fmt.Sprintf("retrying (attempt %d of %d failed)", w.Attempt, w.MaxAttempts)
	}
	return ferry.Printable(img.Status)
}

func ageText(seconds *int64) string {
	if seconds == nil {
		return "-"
	}
	return (time.Duration(*seconds) * time.Second).String()
}

// rpoText says how an age stands to the RPO of rpo seconds.
func rpoText(past bool, rpo int64) string {
	switch {
	case rpo == 0:
		return ""
	case past:
		return fmt.Sprintf(" (past the RPO of %s)", time.Duration(rpo)*time.Second)
	}
	return fmt.Sprintf(" (RPO %s)", time.Duration(rpo)*time.Second)
}

func timeText(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// truncate cuts s to at most n bytes, on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
