package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
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
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(states)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "IMAGE\tSTATUS\tLAST CONFIRMED SNAPSHOT\tAGE\tCONSISTENCY\tLAST ERROR")
			for _, s := range states {
				age := "-"
				if !s.LastSuccess.IsZero() {
					age = time.Since(s.LastSuccess).Round(time.Second).String()
				}
				last := s.LastSnapshot
				if last == "" {
					last = "-"
				}
				errText := s.LastError
				if len(errText) > 80 {
					errText = errText[:77] + "..."
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Image, s.Status, last, age, orDash(string(s.Consistency)), orDash(errText))
			}
			return tw.Flush()
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
