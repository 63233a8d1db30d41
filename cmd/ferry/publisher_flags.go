package main

import (
	"fmt"
	"log/slog"

	"github.com/ferry-dr/ferry/internal/sign"
	"github.com/ferry-dr/ferry/publisher"
	"github.com/spf13/pflag"
)

type publisherFlags struct {
	chunkSize   uint64
	level       int
	trust       trustFlags
	restoreKeys string
}

func (f *publisherFlags) register(fs *pflag.FlagSet) {
	fs.Uint64Var(&f.chunkSize, "chunk-size", uint64(defaults.Publisher.ChunkSize), "chunk size in bytes (a power of two, 64 KiB to 4 MiB)")
	fs.IntVar(&f.level, "compression-level", defaults.Publisher.CompressionLevel, "gzip level, 1 (fastest) to 9 (smallest)")
	bindConfig(fs, "chunk-size", "publisher.chunk_size")
	bindConfig(fs, "compression-level", "publisher.compression_level")
	f.trust.register(fs, "publisher", "backup site (its results)")
	fs.StringVar(&f.restoreKeys, "restore-keys", "", "comma-separated public keys of the restore identity (ferry restore --to source:); restore jobs signed by none are refused (default: none, every job is accepted)")
	bindConfig(fs, "restore-keys", "publisher.restore_keys")
}

func (f *publisherFlags) options(log *slog.Logger) (publisher.Options, error) {
	o := publisher.Options{ChunkSize: f.chunkSize, CompressionLevel: f.level, Log: log}
	var err error
	if o.Pools, o.Signer, o.Trust, err = f.trust.load(); err != nil {
		return o, err
	}
	if o.RestoreTrust, err = sign.ParseTrust(f.restoreKeys); err != nil {
		return o, fmt.Errorf("--restore-keys: %w", err)
	}
	return o, nil
}
