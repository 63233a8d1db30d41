package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/progress"
)

// printLag prints what `ferry status --streams` shows: the same figures as
// the ferry_jetstream_* metrics.
func printLag(w io.Writer, lag bus.Lag, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(lag)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tDOMAIN\tMESSAGES\tBYTES")
	for _, s := range lag.Streams {
		if note := lagNote(s.Missing, s.Err); note != "" {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\n", s.Stream, s.Domain, note)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", s.Stream, s.Domain, s.Messages, progress.Bytes(s.Bytes))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "CONSUMER\tSTREAM\tDOMAIN\tPENDING\tACK PENDING\tREDELIVERED")
	for _, c := range lag.Consumers {
		if note := lagNote(c.Missing, c.Err); note != "" {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t-\t-\n", c.Consumer, c.Stream, c.Domain, note)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\n", c.Consumer, c.Stream, c.Domain, c.Pending, c.AckPending, c.Redelivered)
	}
	return tw.Flush()
}

func lagNote(missing bool, err string) string {
	switch {
	case missing:
		return "not created yet"
	case err != "":
		return "unreadable: " + err
	}
	return ""
}
