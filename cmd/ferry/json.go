package main

import (
	"encoding/json"
	"io"

	"github.com/spf13/cobra"
)

// addJSONFlag adds --json: the command prints its result as one JSON
// document on stdout instead of text (snake_case keys), for scripts.
func addJSONFlag(cmd *cobra.Command, asJSON *bool) {
	cmd.Flags().BoolVar(asJSON, "json", false, "print the result as JSON (snake_case keys) for scripts")
}

// writeJSON writes v as an indented JSON document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
