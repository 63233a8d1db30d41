package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// BackupRun is the outcome of one `ferry backup`, for its textfile.
type BackupRun struct {
	Image     string
	Start     time.Time
	End       time.Time
	Err       error  // nil: the backup was confirmed (or, with --no-wait, sent)
	BytesSent uint64 // compressed bytes sent, when it got that far
}

// The textfile's gauges, by image. Gauges, not counters: each run writes
// its own figures, and a counter that starts again at every run would show
// no increase.
var textfileGauges = []struct{ name, help string }{
	{"ferry_backup_run_timestamp_seconds", "When the last ferry backup of the image ended."},
	{"ferry_backup_run_success", "1 if the last ferry backup of the image succeeded, 0 if it failed (its output says why)."},
	{"ferry_backup_run_duration_seconds", "How long the last ferry backup of the image took."},
	{"ferry_backup_run_bytes_sent", "Compressed bytes the last ferry backup of the image sent."},
	{"ferry_backup_run_last_success_timestamp_seconds", "When a ferry backup of the image last succeeded."},
}

// WriteTextfile records run in path, a file for node_exporter's textfile
// collector (which reads the *.prom files of one directory). It writes a
// temporary file beside path and renames it, so node_exporter never reads
// half a file. The series of other images in the file are kept, so one file
// can serve several cron jobs run one after another, and a failed run keeps
// the image's last success.
func WriteTextfile(path string, run BackupRun) error {
	old, err := readTextfile(path)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	vecs := map[string]*prometheus.GaugeVec{}
	for _, g := range textfileGauges {
		vecs[g.name] = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: g.name, Help: g.help}, []string{"image"})
		reg.MustRegister(vecs[g.name])
		for _, m := range old[g.name].GetMetric() {
			if img := imageLabel(m); img != run.Image {
				vecs[g.name].WithLabelValues(img).Set(m.GetGauge().GetValue())
			}
		}
	}
	set := func(name string, v float64) { vecs[name].WithLabelValues(run.Image).Set(v) }
	end := float64(run.End.UnixNano()) / 1e9
	set("ferry_backup_run_timestamp_seconds", end)
	set("ferry_backup_run_duration_seconds", run.End.Sub(run.Start).Seconds())
	set("ferry_backup_run_bytes_sent", float64(run.BytesSent))
	if run.Err == nil {
		set("ferry_backup_run_success", 1)
		set("ferry_backup_run_last_success_timestamp_seconds", end)
	} else {
		set("ferry_backup_run_success", 0)
		for _, m := range old["ferry_backup_run_last_success_timestamp_seconds"].GetMetric() {
			if imageLabel(m) == run.Image {
				set("ferry_backup_run_last_success_timestamp_seconds", m.GetGauge().GetValue())
			}
		}
	}
	if err := prometheus.WriteToTextfile(path, reg); err != nil {
		return fmt.Errorf("write metrics textfile %s: %w (is its directory there and writable?)", path, err)
	}
	return nil
}

// readTextfile reads what an earlier run wrote to path; nothing if there
// is no such file, or if it is not in the text format (it is replaced).
func readTextfile(path string) (map[string]*dto.MetricFamily, error) {
	text, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read metrics textfile %s: %w", path, err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(text))
	if err != nil {
		return nil, nil
	}
	return families, nil
}

func imageLabel(m *dto.Metric) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == "image" {
			return l.GetValue()
		}
	}
	return ""
}
