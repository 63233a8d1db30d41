package main

import (
	"log/slog"

	"github.com/ferry-dr/ferry/publisher"
	"github.com/spf13/pflag"
)

type publisherFlags struct {
	chunkSize uint64
	level     int
}

func (f *publisherFlags) register(fs *pflag.FlagSet) {
	fs.Uint64Var(&f.chunkSize, "chunk-size", publisher.DefaultChunkSize, "chunk size in bytes (a power of two, 64 KiB to 4 MiB)")
	fs.IntVar(&f.level, "compression-level", 6, "gzip level, 1 (fastest) to 9 (smallest)")
}

func (f *publisherFlags) options(log *slog.Logger) publisher.Options {
	return publisher.Options{ChunkSize: f.chunkSize, CompressionLevel: f.level, Log: log}
}
