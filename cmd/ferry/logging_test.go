package main

import (
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"unicode"
)

// TestLogLinesEscapeControlCharacters: names and errors from messages that
// hold terminal escapes reach stderr escaped, through the daemons' logger
// (message, keys, values, groups) and through the error printing of every
// command.
func TestLogLinesEscapeControlCharacters(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	stderr := os.Stderr
	os.Stderr = f
	defer func() { os.Stderr = stderr }()

	evil := "vm\x1b[2J\x1b]0;pwned\x07\u009b31m\u202e\r"
	log := newLogger(slog.LevelInfo).With("image\x1b", evil).WithGroup("g\x1b")
	log.Error("manifest refused "+evil, "subject", "ferry.manifest."+evil, "error", errors.New("refused: "+evil))
	printError("ferry:", errors.New("first line "+evil+"\nsecond line "+evil))
	os.Stderr = stderr

	raw, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	if n := strings.Count(text, "\n"); n != 3 {
		t.Errorf("%d lines, want 3 (one log line, two of the error):\n%s", n, text)
	}
	for _, r := range text {
		if r != '\n' && !unicode.IsPrint(r) {
			t.Fatalf("stderr got %U raw:\n%q", r, text)
		}
	}
	if !strings.Contains(text, `vm\x1b[2J`) {
		t.Fatalf("the escape is not shown escaped:\n%s", text)
	}
}
