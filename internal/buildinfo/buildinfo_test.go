package buildinfo

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestRead(t *testing.T) {
	stamped := &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261208014414-bfeb07d1a2b3+dirty"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "bfeb07d1a2b3"}, {Key: "vcs.modified", Value: "true"}}}
	for _, c := range []struct {
		name            string
		version, commit string
		bi              *debug.BuildInfo
		want            Info
	}{
		{"linked", "0.1.0", "abc123", stamped, Info{"0.1.0", "abc123", runtime.Version()}},
		{"from the toolchain", "", "", stamped, Info{"v0.0.0-20261208014414-bfeb07d1a2b3+dirty", "bfeb07d1a2b3-dirty", runtime.Version()}},
		{"go run: nothing recorded", "", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, Info{"devel", "unknown", runtime.Version()}},
		{"no build info", "", "", nil, Info{"devel", "unknown", runtime.Version()}},
	} {
		if got := read(c.version, c.commit, c.bi); got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
}
