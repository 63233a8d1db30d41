// Command nfpm builds Ferry's .deb with nfpm as a library (only its deb
// packager, so nothing else it supports has to be downloaded). It lives in
// its own module so Ferry's go.mod does not carry nfpm's dependencies.
//
//	go build -C packaging/nfpm -o bin/nfpm-deb . && bin/nfpm-deb -config packaging/nfpm.yaml -out bin
//
// (run from the repository root: the configuration's paths are relative to it)
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the "deb" packager
)

func main() {
	config := flag.String("config", "nfpm.yaml", "nfpm configuration; contents paths are relative to the working directory")
	version := flag.String("version", "0.1.0", "package version")
	arch := flag.String("arch", "amd64", "Debian architecture")
	out := flag.String("out", "dist", "directory for the .deb")
	flag.Parse()
	if err := run(*config, *version, *arch, *out); err != nil {
		fmt.Fprintln(os.Stderr, "nfpm:", err)
		os.Exit(1)
	}
}

func run(configPath, version, arch, outDir string) error {
	// ${VERSION} and ${ARCH} in the configuration come from the flags.
	os.Setenv("VERSION", version)
	os.Setenv("ARCH", arch)
	cfg, err := nfpm.ParseFileWithEnvMapping(configPath, os.Getenv)
	if err != nil {
		return fmt.Errorf("read %s: %w", configPath, err)
	}
	info, err := cfg.Get("deb")
	if err != nil {
		return err
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.Validate(info); err != nil {
		return err
	}
	pkg, err := nfpm.Get("deb")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(outDir, pkg.ConventionalFileName(info))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pkg.Package(info, f); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("package %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Println(path)
	return nil
}
