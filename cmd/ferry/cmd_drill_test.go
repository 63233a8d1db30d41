package main

import (
	"errors"
	"testing"

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
