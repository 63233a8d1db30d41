package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dr/ferry/internal/config"
)

// TestExitCodes: the command line's mistakes exit 2, a failure 1, what
// worked 0, and ferry hook 0 whatever happens (docs/operations.md,
// "Command-line conventions"). None of these cases reaches Ceph or NATS.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(config.PathEnv, writeConfig(t, ""))
	for _, c := range []struct {
		args string
		want int
	}{
		{"--version", exitOK},
		{"version --json", exitOK},
		{"config", exitOK}, // a group alone: its help
		{"--help", exitOK},
		{"config chek", exitUsage},
		{"chek", exitUsage},
		{"retention aply rbd/x", exitUsage},
		{"backup", exitUsage},
		{"backup --no-such-flag rbd/x", exitUsage},
		{"verify rbd/x@s rbd/y@s", exitUsage},
		{"init --out " + dir, exitUsage}, // required flags left out
		{"verify -c /a.conf --source-conf /b.conf rbd/x@s", exitUsage},
		{"verify --backup-cluster ../x rbd/x@s", exitUsage}, // refused before the source is reached
		{"restore rbd/x@s", exitUsage},
		{"restore --to source:rbd/y --source-conf /p.conf rbd/x@s", exitUsage},
		{"restore --to source:rbd/y --to-conf /p.conf rbd/x@s", exitUsage},
		{"export-diff --export-format 3 rbd/x -", exitUsage},
		{"retention apply --policy weekly rbd/x", exitUsage},
		{"import-diff " + filepath.Join(dir, "missing.diff") + " rbd/x", exitError},
		{"hook --no-such-flag", exitOK},
	} {
		if got := run(context.Background(), newRootCommand(), strings.Fields(c.args)); got != c.want {
			t.Errorf("ferry %s: exit %d, want %d", c.args, got, c.want)
		}
	}
}
