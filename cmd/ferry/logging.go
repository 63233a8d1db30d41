package main

import (
	"log/slog"
	"os"
)

// newLogger returns the structured logger daemons and commands share.
// Daemons log at info; one-shot commands only warnings, unless verbose.
func newLogger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func logLevel(verbose bool) slog.Level {
	if verbose {
		return slog.LevelInfo
	}
	return slog.LevelWarn
}
