package testutil

import (
	"bytes"
	"os/exec"
	"testing"
)

// PromtoolCheckMetrics fails t unless `promtool check metrics` (Debian's
// prometheus package; make deps installs it) passes text, a scrape in the
// Prometheus text format. A missing promtool fails the test: the check
// must not silently not happen.
func PromtoolCheckMetrics(t *testing.T, what string, text []byte) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is needed to check the metrics: %v (install Debian's prometheus package: make deps)", err)
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics of %s: %v\n%s\n%s", what, err, out, text)
	}
}
