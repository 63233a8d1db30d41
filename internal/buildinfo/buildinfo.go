// Package buildinfo says which build of Ferry is running: its version and
// commit, set when it is linked (the Makefile passes them with -ldflags -X),
// else taken from what the Go toolchain recorded in the binary.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Set by the linker: -X github.com/ferry-dr/ferry/internal/buildinfo.version=0.1.0
// and .commit=GIT_COMMIT.
var version, commit string

// Info identifies a build.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
}

// Read returns this binary's build. A plain `go build` in a checkout has no
// linked version: then the module's version and the VCS revision the Go
// toolchain stamped stand in, and "devel" and "unknown" where it has none.
func Read() Info {
	bi, _ := debug.ReadBuildInfo()
	return read(version, commit, bi)
}

func read(version, commit string, bi *debug.BuildInfo) Info {
	i := Info{Version: version, Commit: commit, GoVersion: runtime.Version()}
	if bi != nil {
		if i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			i.Version = bi.Main.Version
		}
		if i.Commit == "" {
			i.Commit = vcsRevision(bi)
		}
	}
	if i.Version == "" {
		i.Version = "devel"
	}
	if i.Commit == "" {
		i.Commit = "unknown"
	}
	return i
}

// vcsRevision is the commit the toolchain stamped, marked when the tree
// had changes that no commit holds.
func vcsRevision(bi *debug.BuildInfo) string {
	var rev string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev != "" && modified {
		rev += "-dirty"
	}
	return rev
}
