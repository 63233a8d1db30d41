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
	fs.Uint64Var(&f.chunkSize, "chunk-size", uint64(defaults.Publisher.ChunkSize), "chunk size in bytes (a power of two, 64 KiB to 4 MiB)")
	fs.IntVar(&f.level, "compression-level", defaults.Publisher.CompressionLevel, "gzip level, 1 (fastest) to 9 (smallest)")
	bindConfig(fs, "chunk-size", "publisher.chunk_size")
	bindConfig(fs, "compression-level", "publisher.compression_level")
}

func (f *publisherFlags) options(log *slog.Logger) publisher.Options {
	return publisher.Options{ChunkSize: f.chunkSize, CompressionLevel: f.level, Log: log}
}
