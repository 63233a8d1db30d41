package metrics

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestDashboardUsesExportedNames: every ferry_* series the Grafana dashboard
// queries is one this package exports, so renaming a metric breaks a test,
// not a dashboard in production.
func TestDashboardUsesExportedNames(t *testing.T) {
	m := New(nil)
	known := map[string]bool{}
	ch := make(chan *prometheus.Desc, 64)
	for _, c := range []prometheus.Collector{m.backups, m.duration, m.failures, m.givenUp, m.changed, m.read, m.rawSent,
		m.sent, m.extentSent, m.chunks, m.chunksSent, m.appliedData, &stateCollector{}, &lagCollector{}} {
		c.Describe(ch)
	}
	close(ch)
	fqName := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	for d := range ch {
		known[fqName.FindStringSubmatch(d.String())[1]] = true
	}

	raw, err := os.ReadFile(filepath.Join("..", "..", "packaging", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			for _, name := range regexp.MustCompile(`ferry_[a-z_]+`).FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
				if !known[base] {
					t.Errorf("panel %q queries %s, which is not exported", p.Title, name)
				}
				used[base] = true
			}
		}
	}
	for name := range known {
		if !used[name] {
			t.Errorf("metric %s is on no dashboard panel", name)
		}
	}
}
