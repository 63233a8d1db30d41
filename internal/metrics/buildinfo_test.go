package metrics

import (
	"testing"

	"github.com/ferry-dr/ferry/internal/buildinfo"
)

// TestBuildInfo: every Metrics exports ferry_build_info = 1 with the build's
// version, commit and Go version as labels.
func TestBuildInfo(t *testing.T) {
	families, err := New(nil, Role{Name: RoleConsumer}).Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := buildinfo.Read()
	for _, f := range families {
		if f.GetName() != "ferry_build_info" {
			continue
		}
		if len(f.GetMetric()) != 1 || f.GetMetric()[0].GetGauge().GetValue() != 1 {
			t.Fatalf("ferry_build_info: %v, want one series of value 1", f.GetMetric())
		}
		labels := map[string]string{}
		for _, l := range f.GetMetric()[0].GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["version"] != want.Version || labels["commit"] != want.Commit || labels["goversion"] != want.GoVersion {
			t.Fatalf("ferry_build_info labels %v, want %+v", labels, want)
		}
		return
	}
	t.Fatal("no ferry_build_info")
}
