package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestChunkKeyCommands: generate writes a key and prints its id, id prints
// the same, and generate never replaces a key file.
func TestChunkKeyCommands(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chunk.key")
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		root := newRootCommand()
		root.SetOut(&out)
		root.SetArgs(append([]string{"--config", writeConfig(t, "")}, args...))
		err := root.Execute()
		return out.String(), err
	}
	out, err := run("chunk-key", "generate", path)
	if err != nil {
		t.Fatal(err)
	}
	_, id, ok := strings.Cut(strings.TrimSpace(out), "(key id ")
	id = strings.TrimSuffix(id, ")")
	if !ok || len(id) != 16 {
		t.Fatalf("generate printed %q, want the key id", out)
	}
	if out, err := run("chunk-key", "id", path); err != nil || strings.TrimSpace(out) != id {
		t.Fatalf("id printed %q (%v), want %s", out, err, id)
	}
	if _, err := run("chunk-key", "generate", path); err == nil || !strings.Contains(err.Error(), "never replaced") {
		t.Fatalf("generate over an existing key: %v, want a refusal", err)
	}
}
