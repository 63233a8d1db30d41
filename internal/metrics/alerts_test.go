package metrics

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestAlertsUseExportedNames: the shipped alert rules query only metrics
// Ferry exports, and every alert has a promtool unit test (which make
// test-alerts runs), so that renaming a metric or adding an alert without
// a test breaks a test, not the operator's alerting.
func TestAlertsUseExportedNames(t *testing.T) {
	dir := filepath.Join("..", "..", "packaging", "prometheus")
	rules, err := os.ReadFile(filepath.Join(dir, "ferry-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join(dir, "ferry-alerts_test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	known := exportedNames(t)
	for _, name := range regexp.MustCompile(`ferry_[a-z_]+`).FindAllString(string(rules), -1) {
		if !known[name] {
			t.Errorf("ferry-alerts.yml queries %s, which is not exported", name)
		}
	}
	tested := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s*alertname: (\w+)`).FindAllStringSubmatch(string(tests), -1) {
		tested[m[1]] = true
	}
	alerts := regexp.MustCompile(`(?m)^\s*- alert: (\w+)`).FindAllStringSubmatch(string(rules), -1)
	if len(alerts) == 0 {
		t.Fatal("ferry-alerts.yml has no alerts")
	}
	for _, m := range alerts {
		if !tested[m[1]] {
			t.Errorf("alert %s has no test in ferry-alerts_test.yml", m[1])
		}
		if !strings.HasPrefix(m[1], "Ferry") {
			t.Errorf("alert %s: Ferry's alerts are named Ferry..., so an operator knows whose they are", m[1])
		}
	}
}
