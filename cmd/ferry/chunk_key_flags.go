package main

import (
	"github.com/ferry-dr/ferry/internal/chunk"
	"github.com/spf13/pflag"
)

// chunkKeyFlags name the chunk key file of the commands that store or read
// chunks; both sites must give the same.
type chunkKeyFlags struct{ file string }

func (f *chunkKeyFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.file, "chunk-key", "", "chunk key file: chunks are encrypted at rest with it; every process of both sites that stores or reads chunks needs the same file (ferry chunk-key generate writes one; default: none, unencrypted)")
	bindConfig(fs, "chunk-key", "chunk.key_file")
}

// sealer loads the key; nil without one.
func (f *chunkKeyFlags) sealer() (chunk.Sealer, error) {
	if f.file == "" {
		return nil, nil
	}
	return chunk.LoadKey(f.file)
}
