package bench

import (
	"flag"
	"os"
	"testing"

	"github.com/ferry-dr/ferry/internal/testbed"
)

var (
	flagOut      = flag.String("bench-out", "", "also write the report to this file")
	flagFerryBin = flag.String("ferry-bin", "", "ferry binary to measure (default: build ./cmd/ferry with -tags pacific)")
	flagSize     = flag.Int64("bench-size", 1<<30, "image size in bytes for the 1 GiB rows (smaller for a quick trial run)")
	flagRuns     = flag.Int("bench-runs", 3, "runs per diff-engine row (the median is reported)")
	flagBig      = flag.Bool("bench-big", false, "add the 4 GiB export/import peak-RSS rows (writes 4 GiB)")
	flagClones   = flag.Int("bench-clones", 10, "clones in the dedup row")
	flagAllGzip  = flag.Bool("bench-gzip-all", false, "gzip -6 every clone's diff in the dedup row, instead of the first and scaling by diff size")
)

// The two-site test bed starts when a benchmark first asks for it: a plain
// `go test ./...` runs nothing here and needs no Ceph.
func TestMain(m *testing.M) {
	// The ferry processes the tests start take every option on their
	// command line: a ferry.yaml installed on this machine must not count.
	os.Setenv("FERRY_CONFIG", os.DevNull)
	testbed.Main(m)
}
