package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/recovery"
)

// TestDrillExitCodes: a drill whose restored data does not match exits
// with exitDiffers, one that could not run with exitError.
func TestDrillExitCodes(t *testing.T) {
	for _, c := range []struct {
		name string
		rep  recovery.DrillReport
		err  error
		want int
	}{
		{"passed", recovery.DrillReport{}, nil, exitOK},
		{"recorded hash differs", recovery.DrillReport{Mismatches: []recovery.ScrubMismatch{{Chunk: "c"}}}, nil, exitDiffers},
		{"snapshot differs", recovery.DrillReport{Differences: []recovery.Range{{Offset: 0, Length: 4096}}}, nil, exitDiffers},
		{"size differs", recovery.DrillReport{SizeDiffers: true}, nil, exitDiffers},
		{"could not run", recovery.DrillReport{}, errors.New("no cluster"), exitError},
	} {
		if got := exitCodeOf(drillOutcome(c.rep, c.err)); got != c.want {
			t.Errorf("%s: exit code %d, want %d", c.name, got, c.want)
		}
	}
}

// TestDrillMetrics: the textfile holds each ferry_drill_* series of the
// drilled image, with the outcome, and replaces an earlier file.
func TestDrillMetrics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "drill.prom")
	img := ferry.ImageSpec{Pool: "rbd", Image: "vm-1", Snap: "ferry-1"}
	rep := recovery.DrillReport{Snapshot: img, Size: 1 << 30, RestoreDuration: 1500 * time.Millisecond, VerifyDuration: 500 * time.Millisecond}
	at := time.Unix(1700000000, 0)
	for _, c := range []struct {
		passed bool
		want   string
	}{{false, "0"}, {true, "1"}} {
		if err := writeDrillMetrics(path, rep, c.passed, at); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range []string{
			`ferry_drill_success{image="rbd/vm-1"} ` + c.want,
			`ferry_drill_last_run_timestamp_seconds{image="rbd/vm-1"} 1.7e+09`,
			`ferry_drill_restore_seconds{image="rbd/vm-1"} 1.5`,
			`ferry_drill_verify_seconds{image="rbd/vm-1"} 0.5`,
			`ferry_drill_recover_seconds{image="rbd/vm-1"} 2`,
			`ferry_drill_restored_bytes{image="rbd/vm-1"} 1.073741824e+09`,
		} {
			if !strings.Contains(string(raw), line+"\n") {
				t.Errorf("passed %v: the textfile lacks %q:\n%s", c.passed, line, raw)
			}
		}
	}
}
