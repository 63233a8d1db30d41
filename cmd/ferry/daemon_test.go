package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDaemonStartFailsCleanly: a daemon that cannot reach its cluster
// returns the reason, and releases what it opened (no panic on the way out).
func TestDaemonStartFailsCleanly(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "ferry.yaml")
	if err := os.WriteFile(cfg, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"consumer", "publisher"} {
		root := newRootCommand()
		root.SetArgs([]string{"--config", cfg, role, "run", "-c", "/nonexistent/ceph.conf"})
		err := root.ExecuteContext(context.Background())
		if err == nil || !strings.Contains(err.Error(), "/nonexistent/ceph.conf") {
			t.Errorf("%s run with a missing ceph.conf: err = %v", role, err)
		}
	}
}
