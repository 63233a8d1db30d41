package metrics

import (
	"encoding/json"
	"fmt"
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
	known := exportedNames(t)
	raw, err := os.ReadFile(filepath.Join("..", "..", "packaging", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Templating struct {
			List []struct {
				Name  string
				Query json.RawMessage
			}
		}
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`ferry_[a-z_]+`)
	used := map[string]bool{}
	check := func(where, expr string) {
		for _, name := range names.FindAllString(expr, -1) {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_count"), "_sum")
			if !known[base] {
				t.Errorf("%s queries %s, which is not exported", where, name)
			}
			used[base] = true
		}
	}
	vars := map[string]bool{}
	for _, v := range dash.Templating.List {
		check("variable "+v.Name, string(v.Query))
		vars[v.Name] = false
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			check(fmt.Sprintf("panel %q", p.Title), tg.Expr)
			for v := range vars {
				if strings.Contains(tg.Expr, "$"+v) {
					vars[v] = true
				}
			}
		}
	}
	for name := range known {
		if !used[name] {
			t.Errorf("metric %s is on no dashboard panel", name)
		}
	}
	for v, isUsed := range vars {
		if !isUsed && v != "datasource" {
			t.Errorf("dashboard variable $%s is used by no panel", v)
		}
	}
}

// exportedNames are the ferry_* metrics both daemons and ferry backup's
// textfile export.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{}
	ch := make(chan *prometheus.Desc, 64)
	for _, c := range []prometheus.Collector{&siteCollector{givenUp: newGivenUp(nil)}, &lagCollector{}, &peerCollector{}} {
		c.Describe(ch)
	}
	close(ch)
	fqName := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	for d := range ch {
		known[fqName.FindStringSubmatch(d.String())[1]] = true
	}
	for _, role := range []Role{{Name: RolePublisher, Reasons: []string{"other"}}, {Name: RoleConsumer, Reasons: []string{"other"}}} {
		families, err := New(nil, role).Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if strings.HasPrefix(f.GetName(), "ferry_") {
				known[f.GetName()] = true
			}
		}
	}
	for _, g := range textfileGauges {
		known[g.name] = true
	}
	return known
}
