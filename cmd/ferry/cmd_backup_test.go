package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBackupMetricsTextfile: a ferry backup that fails still records its
// run in --metrics-textfile, and keeps its own error; a textfile that
// cannot be written adds its reason to the run's.
func TestBackupMetricsTextfile(t *testing.T) {
	dir := t.TempDir()
	cfg, textfile := filepath.Join(dir, "ferry.yaml"), filepath.Join(dir, "ferry-backup.prom")
	if err := os.WriteFile(cfg, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(textfile string) error {
		root := newRootCommand()
		root.SetArgs([]string{"--config", cfg, "backup", "rbd/vm", "-c", "/nonexistent/ceph.conf", "--metrics-textfile", textfile})
		return root.ExecuteContext(context.Background())
	}
	if err := run(textfile); err == nil || !strings.Contains(err.Error(), "/nonexistent/ceph.conf") {
		t.Fatalf("backup with a missing ceph.conf: err = %v", err)
	}
	text, err := os.ReadFile(textfile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(text), `ferry_backup_run_success{image="rbd/vm"} 0`) {
		t.Errorf("the textfile does not record the failed run:\n%s", text)
	}
	err = run(filepath.Join(dir, "missing", "ferry-backup.prom"))
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/ceph.conf") || !strings.Contains(err.Error(), "--metrics-textfile") {
		t.Errorf("backup with a missing ceph.conf and textfile directory: err = %v", err)
	}
}
