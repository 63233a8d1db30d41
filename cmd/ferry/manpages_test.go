package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"
)

var manDir = flag.String("man-dir", "", "write the man pages into this directory (make package does) instead of a temporary one")

// TestManPages generates a section 1 man page per command, named as the
// units' Documentation= and SEE ALSO name them (ferry-agent-run.1), and
// checks that each names its command and flags. The man pages come from a
// test so that the shipped binary does not carry a man page generator;
// make package runs it with -man-dir. The date comes from
// $SOURCE_DATE_EPOCH when set (the changelog's, in make package).
func TestManPages(t *testing.T) {
	dir := *manDir
	if dir == "" {
		dir = t.TempDir()
	}
	root := newRootCommand()
	hostDefaults(root)
	root.DisableAutoGenTag = true
	header := &doc.GenManHeader{Title: "FERRY", Section: "1", Source: "Ferry", Manual: "Ferry Manual"}
	if err := doc.GenManTreeFromOpts(root, doc.GenManTreeOptions{Header: header, Path: dir, CommandSeparator: "-"}); err != nil {
		t.Fatal(err)
	}
	var check func(cmd *cobra.Command)
	check = func(cmd *cobra.Command) {
		name := strings.ReplaceAll(cmd.CommandPath(), " ", "-")
		page, err := os.ReadFile(filepath.Join(dir, name+".1"))
		if err != nil {
			t.Fatalf("no man page for %q: %v", cmd.CommandPath(), err)
		}
		roff := strings.ReplaceAll(string(page), `\-`, "-") // whether md2man escapes them or not
		if !strings.Contains(roff, ".SH NAME\n"+name+" - ") {
			t.Errorf("%s.1 does not start with its NAME section", name)
		}
		cmd.NonInheritedFlags().VisitAll(func(f *pflag.Flag) {
			if !f.Hidden && !strings.Contains(roff, "--"+f.Name) {
				t.Errorf("%s.1 lacks --%s", name, f.Name)
			}
		})
		for _, c := range cmd.Commands() {
			if c.IsAvailableCommand() && !c.IsAdditionalHelpTopicCommand() {
				check(c)
			}
		}
	}
	check(root)
}
