package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"
)

var update = flag.Bool("update", false, "rewrite the generated files (docs/cli.md) instead of comparing them")

// TestCLIReference: docs/cli.md is the command tree's own help, so a flag or
// command added, renamed or reworded without it fails here. Regenerate it
// with: go test -tags pacific -run TestCLIReference ./cmd/ferry/ -update
func TestCLIReference(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("# `ferry` command reference\n\n" +
		"Generated from the commands' own help by `TestCLIReference` (cmd/ferry); edit the\n" +
		"commands, then run `go test -tags pacific -run TestCLIReference ./cmd/ferry/ -update`.\n" +
		"How to run Ferry in production: [operations.md](operations.md).\n\n")
	root := newRootCommand()
	hostDefaults(root)
	if err := writeCLIReference(&b, root); err != nil {
		t.Fatal(err)
	}
	checkGenerated(t, filepath.Join("..", "..", "docs", "cli.md"), b.Bytes())
}

// writeCLIReference writes every available command of the tree under root,
// depth first in the order they were added, as one Markdown page whose
// "SEE ALSO" links point at the headings of the same page.
func writeCLIReference(w io.Writer, root *cobra.Command) error {
	root.DisableAutoGenTag = true // no date: the file must not change unless the commands do
	anchor := func(file string) string {
		return "#" + strings.ReplaceAll(strings.TrimSuffix(file, ".md"), "_", "-")
	}
	var walk func(cmd *cobra.Command) error
	walk = func(cmd *cobra.Command) error {
		if err := doc.GenMarkdownCustom(cmd, w, anchor); err != nil {
			return err
		}
		for _, c := range cmd.Commands() {
			if !c.IsAvailableCommand() || c.IsAdditionalHelpTopicCommand() {
				continue
			}
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(root)
}

// hostDefaults shows a default taken from this machine's name as
// $(hostname), so that the reference is the same wherever it is generated.
func hostDefaults(cmd *cobra.Command) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return
	}
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.DefValue == host {
			f.DefValue = "$(hostname)"
		}
	})
	for _, c := range cmd.Commands() {
		hostDefaults(c)
	}
}

// checkGenerated compares a generated file with the committed one, or
// writes it with -update.
func checkGenerated(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (generate it with -update)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) && i < len(wl); i++ {
			if gl[i] != wl[i] {
				t.Fatalf("%s is stale from line %d: the commands say %q, the file %q; regenerate it with -update", path, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("%s is stale (%d lines, the commands give %d); regenerate it with -update", path, len(wl), len(gl))
	}
}
