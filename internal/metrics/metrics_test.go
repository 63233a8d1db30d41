package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/testutil"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

// TestCountersStartAtZero: a daemon's labelled counters exist at zero from
// the first scrape, for each of its reasons and kinds, so that
// increase(...) sees the first failure after a start; and each daemon
// exports only the counters of its own work.
func TestCountersStartAtZero(t *testing.T) {
	cons := New(nil, Role{Name: RoleConsumer, Reasons: []string{"refused", "other"}})
	want := `
# HELP ferry_backup_failures_total Failed backup attempts, by reason; most are retried.
# TYPE ferry_backup_failures_total counter
ferry_backup_failures_total{reason="other",role="consumer"} 0
ferry_backup_failures_total{reason="refused",role="consumer"} 0
# HELP ferry_backups_total Backups sent (publisher) or applied and confirmed (consumer), by kind (full or incremental).
# TYPE ferry_backups_total counter
ferry_backups_total{kind="full",role="consumer"} 0
ferry_backups_total{kind="incremental",role="consumer"} 0
`
	if err := promtest.GatherAndCompare(cons.Registry(), strings.NewReader(want), "ferry_backup_failures_total", "ferry_backups_total"); err != nil {
		t.Error(err)
	}
	pub := New(nil, Role{Name: RolePublisher, Reasons: []string{"other"}})
	only := map[*Metrics][]string{cons: {"ferry_backup_applied_bytes_total"}, pub: {"ferry_backup_read_bytes_total", "ferry_backup_bytes_sent_total"}}
	for m, names := range only {
		other := pub
		if m == pub {
			other = cons
		}
		for _, name := range names {
			if n, err := promtest.GatherAndCount(m.Registry(), name); err != nil || n != 1 {
				t.Errorf("%s: %d series (%v), want 1", name, n, err)
			}
			if n, err := promtest.GatherAndCount(other.Registry(), name); err != nil || n != 0 {
				t.Errorf("%s exported by the %s too (%d series, %v)", name, other.role, n, err)
			}
		}
	}
	var text bytes.Buffer
	for _, m := range []*Metrics{cons, pub} {
		families, err := m.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if _, err := expfmt.MetricFamilyToText(&text, f); err != nil {
				t.Fatal(err)
			}
		}
		testutil.PromtoolCheckMetrics(t, m.role+" metrics", text.Bytes())
		text.Reset()
	}
}

// TestGivenUpByImage: every image the consumer knows has a given-up
// counter at zero for each reason before its first give-up, and an image
// it learns of by its give-up gets the other reasons at zero.
func TestGivenUpByImage(t *testing.T) {
	g := newGivenUp([]string{"base_missing", "refused"})
	g.know("rbd/a")
	g.inc("rbd/b", "refused")
	g.inc("rbd/a", "refused")
	g.inc("rbd/a", "refused")
	want := `
# HELP ferry_backups_given_up_total Backups the consumer stopped retrying: an operator must act (see ferry status).
# TYPE ferry_backups_given_up_total counter
ferry_backups_given_up_total{image="rbd/a",reason="base_missing"} 0
ferry_backups_given_up_total{image="rbd/a",reason="refused"} 2
ferry_backups_given_up_total{image="rbd/b",reason="base_missing"} 0
ferry_backups_given_up_total{image="rbd/b",reason="refused"} 1
`
	if err := promtest.CollectAndCompare(g, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// TestWriteTextfile: ferry backup's textfile holds each image's last run,
// keeps the last success across a failed run and other images' series
// across runs, leaves no temporary file behind, and passes promtool.
func TestWriteTextfile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ferry-backup.prom")
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	runs := []BackupRun{
		{Image: "rbd/a", Start: t0, End: t0.Add(90 * time.Second), BytesSent: 1000},
		{Image: "rbd/b", Start: t0, End: t0.Add(time.Minute), BytesSent: 7},
		{Image: "rbd/a", Start: t0.Add(time.Hour), End: t0.Add(time.Hour + 5*time.Second), Err: errors.New("backup site unreachable")},
	}
	for _, r := range runs {
		if err := WriteTextfile(path, r); err != nil {
			t.Fatal(err)
		}
	}
	end := func(d time.Duration) float64 { return float64(t0.Add(d).Unix()) }
	want := map[string]float64{
		`ferry_backup_run_bytes_sent{image="rbd/a"}`:                     0,
		`ferry_backup_run_bytes_sent{image="rbd/b"}`:                     7,
		`ferry_backup_run_duration_seconds{image="rbd/a"}`:               5,
		`ferry_backup_run_duration_seconds{image="rbd/b"}`:               60,
		`ferry_backup_run_last_success_timestamp_seconds{image="rbd/a"}`: end(90 * time.Second),
		`ferry_backup_run_last_success_timestamp_seconds{image="rbd/b"}`: end(time.Minute),
		`ferry_backup_run_success{image="rbd/a"}`:                        0,
		`ferry_backup_run_success{image="rbd/b"}`:                        1,
		`ferry_backup_run_timestamp_seconds{image="rbd/a"}`:              end(time.Hour + 5*time.Second),
		`ferry_backup_run_timestamp_seconds{image="rbd/b"}`:              end(time.Minute),
	}
	families, err := readTextfile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			got[fmt.Sprintf("%s{image=%q}", name, imageLabel(m))] = m.GetGauge().GetValue()
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("the textfile holds\n%v\nwant\n%v", got, want)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Errorf("the textfile's directory holds %v (%v), want the textfile alone", entries, err)
	}
	testutil.PromtoolCheckMetrics(t, "the textfile", text)

	// A file that is not in the text format is replaced.
	if err := os.WriteFile(path, []byte("not metrics {"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteTextfile(path, runs[1]); err != nil {
		t.Fatal(err)
	}
	if err := WriteTextfile(filepath.Join(dir, "missing", "f.prom"), runs[1]); err == nil || !strings.Contains(err.Error(), "writable") {
		t.Errorf("a textfile in a missing directory: %v", err)
	}
}
