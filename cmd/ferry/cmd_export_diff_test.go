package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// leftovers lists the entries of dir other than want.
func leftovers(t *testing.T, dir string, want ...string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var extra []string
	for _, e := range entries {
		keep := false
		for _, w := range want {
			keep = keep || e.Name() == w
		}
		if !keep {
			extra = append(extra, e.Name())
		}
	}
	return extra
}

func TestDiffOutputAppearsWhole(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "img.diff")
	out, commit, abort, err := openDiffOutput(path)
	if err != nil {
		t.Fatal(err)
	}
	defer abort()
	if _, err := io.WriteString(out, "rbd diff v1\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatalf("%s exists before commit: a reader could take a partial diff for a whole one", path)
	}
	if err := commit(); err != nil {
		t.Fatal(err)
	}
	abort() // what the command's defer does after a commit: must keep the file
	got, err := os.ReadFile(path)
	if err != nil || string(got) != "rbd diff v1\n" {
		t.Fatalf("after commit %s holds %q (%v)", path, got, err)
	}
	if extra := leftovers(t, dir, "img.diff"); len(extra) > 0 {
		t.Errorf("left behind: %v", extra)
	}
}

func TestDiffOutputAbortLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "img.diff")
	out, _, abort, err := openDiffOutput(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(out, "rbd diff v1\n"); err != nil {
		t.Fatal(err)
	}
	abort() // an export that failed half way
	if extra := leftovers(t, dir); len(extra) > 0 {
		t.Errorf("a failed export left %v", extra)
	}
}

func TestDiffOutputNeverReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "img.diff")
	if err := os.WriteFile(path, []byte("older diff"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := openDiffOutput(path); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("opening an existing path: err = %v, want one that says it already exists", err)
	}

	// A file that appears while the export runs is not replaced either.
	other := filepath.Join(dir, "racing.diff")
	out, commit, abort, err := openDiffOutput(other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(out, "new diff"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte("someone else's"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := commit(); err == nil {
		t.Fatal("commit replaced a file that appeared meanwhile")
	}
	abort()
	for p, want := range map[string]string{path: "older diff", other: "someone else's"} {
		if got, err := os.ReadFile(p); err != nil || string(got) != want {
			t.Errorf("%s holds %q (%v), want %q", p, got, err, want)
		}
	}
	if extra := leftovers(t, dir, "img.diff", "racing.diff"); len(extra) > 0 {
		t.Errorf("left behind: %v", extra)
	}
}
