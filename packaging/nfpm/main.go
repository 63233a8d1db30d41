// Command nfpm builds Ferry's .deb with nfpm as a library (only its deb
// packager, so nothing else it supports has to be downloaded). It lives in
// its own module so Ferry's go.mod does not carry nfpm's dependencies.
//
//	go build -C packaging/nfpm -o bin/nfpm-deb . && bin/nfpm-deb -config packaging/nfpm.yaml -shlibs bin/deb/ferry -out bin
//
// (run from the repository root: the configuration's paths are relative to it)
//
// ${shlibs:Depends} in the configuration's depends becomes, as in a debhelper
// build, the packages and minimum versions of the shared libraries the
// -shlibs binary links, from dpkg-shlibdeps.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the "deb" packager
)

func main() {
	config := flag.String("config", "nfpm.yaml", "nfpm configuration; contents paths are relative to the working directory")
	version := flag.String("version", "0.1.0", "package version")
	arch := flag.String("arch", "amd64", "Debian architecture")
	out := flag.String("out", "dist", "directory for the .deb")
	shlibs := flag.String("shlibs", "", "binary whose shared libraries (dpkg-shlibdeps) fill ${shlibs:Depends}")
	flag.Parse()
	if err := run(*config, *version, *arch, *out, *shlibs); err != nil {
		fmt.Fprintln(os.Stderr, "nfpm:", err)
		os.Exit(1)
	}
}

func run(configPath, version, arch, outDir, shlibsBinary string) error {
	var shlibs string
	if shlibsBinary != "" {
		var err error
		if shlibs, err = shlibsDepends(shlibsBinary); err != nil {
			return err
		}
	}
	// ${VERSION} and ${ARCH} come from the flags, ${shlibs:Depends} from -shlibs.
	wantShlibs := false
	cfg, err := nfpm.ParseFileWithEnvMapping(configPath, func(name string) string {
		switch name {
		case "VERSION":
			return version
		case "ARCH":
			return arch
		case "shlibs:Depends":
			wantShlibs = true
			return shlibs
		}
		return os.Getenv(name)
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", configPath, err)
	}
	if wantShlibs && shlibs == "" {
		return fmt.Errorf("%s uses ${shlibs:Depends}: name the packaged binary with -shlibs BINARY", configPath)
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

// shlibsDepends runs dpkg-shlibdeps on binary and returns its
// shlibs:Depends, e.g. "libc6 (>= 2.34), librados2 (>= 16.2.15+ds)".
func shlibsDepends(binary string) (string, error) {
	abs, err := filepath.Abs(binary)
	if err != nil {
		return "", err
	}
	// dpkg-shlibdeps runs in a source tree: a stub debian/control is enough.
	dir, err := os.MkdirTemp("", "ferry-shlibdeps-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	if err := os.Mkdir(filepath.Join(dir, "debian"), 0o755); err != nil {
		return "", err
	}
	control := "Source: ferry\n\nPackage: ferry\nArchitecture: any\n"
	if err := os.WriteFile(filepath.Join(dir, "debian", "control"), []byte(control), 0o644); err != nil {
		return "", err
	}
	cmd := exec.Command("dpkg-shlibdeps", "-O", abs)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("dpkg-shlibdeps %s (install dpkg-dev and the libraries' packages): %w: %s", binary, err, strings.TrimSpace(stderr.String()))
	}
	for _, line := range strings.Split(string(out), "\n") {
		if deps, ok := strings.CutPrefix(line, "shlibs:Depends="); ok && deps != "" {
			return deps, nil
		}
	}
	return "", errors.New("dpkg-shlibdeps " + binary + " found no shared libraries: is it the dynamically linked build?")
}
