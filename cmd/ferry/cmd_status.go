package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/state"
	"github.com/spf13/cobra"
)

func newStatusCommand() *cobra.Command {
	var (
		nf      natsFlags
		asJSON  bool
		streams bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each image's last confirmed backup, its age and its last error",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := nf.connect("ferry status")
			if err != nil {
				return err
			}
			defer conn.Close()
			if streams {
				return printLag(cmd.OutOrStdout(), bus.ReadLag(cmd.Context(), conn), asJSON)
			}
			book, err := state.Open(cmd.Context(), conn.Backup)
			if err != nil {
				return err
			}
			states, err := book.All(cmd.Context())
			if err != nil {
				return err
			}
			sort.Slice(states, func(i, j int) bool { return states[i].Image.String() < states[j].Image.String() })
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(states)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "IMAGE\tSTATUS\tLAST CONFIRMED SNAPSHOT\tAGE\tCONSISTENCY\tLAST ERROR")
			for _, s := range states {
				age := "-"
				if !s.LastSuccess.IsZero() {
					age = time.Since(s.LastSuccess).Round(time.Second).String()
				}
				// Every text here comes from messages and the state:
				// printed raw, a name or error could drive the terminal.
				errText := ferry.Printable(s.LastError)
				if len(errText) > 80 {
					errText = truncate(errText, 77) + "..."
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ferry.Printable(s.Image.String()), ferry.Printable(string(s.Status)),
					orDash(ferry.Printable(s.LastSnapshot)), age, orDash(ferry.Printable(string(s.Consistency))), orDash(errText))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			// A failed backup's error ends with what to do; the table cuts it.
			for _, s := range states {
				if errText := ferry.Printable(s.LastError); s.Status == ferry.StatusFailed && len(errText) > 80 {
					fmt.Fprintf(out, "\n%s: %s\n", ferry.Printable(s.Image.String()), errText)
				}
			}
			// Which consumer applies the backups: with standbys, the one to look at.
			active, err := bus.LockHolder(cmd.Context(), conn.Backup, bus.ConsumerLock)
			switch {
			case err != nil:
				fmt.Fprintf(out, "\nactive consumer: unknown (%s)\n", ferry.Printable(err.Error()))
			case active == "":
				fmt.Fprintln(out, "\nactive consumer: none (is `ferry consumer run` running at the backup site?)")
			default:
				fmt.Fprintf(out, "\nactive consumer: %s\n", ferry.Printable(active))
			}
			return nil
		},
	}
	nf.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	cmd.Flags().BoolVar(&streams, "streams", false, "show JetStream streams and the daemons' consumer lag and redeliveries instead")
	return cmd
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
