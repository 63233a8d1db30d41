package metrics

import (
	"github.com/ferry-dr/ferry/internal/buildinfo"
	"github.com/prometheus/client_golang/prometheus"
)

// buildInfo is ferry_build_info, 1 with the running build in its labels:
// dashboards show which version each daemon runs, and an upgrade half done.
func buildInfo() prometheus.Collector {
	i := buildinfo.Read()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "ferry_build_info",
		Help:        "Always 1; the labels name the running build of Ferry.",
		ConstLabels: prometheus.Labels{"version": i.Version, "commit": i.Commit, "goversion": i.GoVersion}})
	g.Set(1)
	return g
}
