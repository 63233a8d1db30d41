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

// Gauge is one figure of a textfile: the last value for an image.
type Gauge struct {
	Name, Help string
	Value      float64
	Keep       bool // keep the image's value already in the file instead of Value
}

// WriteImageGauges records an image's gauges in path, a file for
// node_exporter's textfile collector (which reads the *.prom files of one
// directory), for the commands cron runs (ferry backup, ferry drill). It
// writes a temporary file beside path and renames it, so node_exporter never
// reads half a file. The series of other images in the file are kept, so one
// file can serve several cron jobs run one after another. Gauges, not
// counters: each run writes its own figures, and a counter that starts again
// at every run would show no increase.
func WriteImageGauges(path, image string, gauges []Gauge) error {
	old, err := readTextfile(path)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	for _, g := range gauges {
		vec := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: g.Name, Help: g.Help}, []string{"image"})
		reg.MustRegister(vec)
		for _, m := range old[g.Name].GetMetric() {
			if img := imageLabel(m); img != image || g.Keep {
				vec.WithLabelValues(img).Set(m.GetGauge().GetValue())
			}
		}
		if !g.Keep {
			vec.WithLabelValues(image).Set(g.Value)
		}
	}
	if err := prometheus.WriteToTextfile(path, reg); err != nil {
		return fmt.Errorf("write metrics textfile %s: %w (is its directory there and writable?)", path, err)
	}
	return nil
}

// BackupRun is the outcome of one `ferry backup`, for its textfile.
type BackupRun struct {
	Image     string
	Start     time.Time
	End       time.Time
	Err       error  // nil: the backup was confirmed (or, with --no-wait, sent)
	BytesSent uint64 // compressed bytes sent, when it got that far
}

// textfileGauges are ferry backup's, in the order BackupRun.gauges gives them.
var textfileGauges = []struct{ name, help string }{
	{"ferry_backup_run_timestamp_seconds", "When the last ferry backup of the image ended."},
	{"ferry_backup_run_success", "1 if the last ferry backup of the image succeeded, 0 if it failed (its output says why)."},
	{"ferry_backup_run_duration_seconds", "How long the last ferry backup of the image took."},
	{"ferry_backup_run_bytes_sent", "Compressed bytes the last ferry backup of the image sent."},
	{"ferry_backup_run_last_success_timestamp_seconds", "When a ferry backup of the image last succeeded."},
}

// WriteTextfile records a backup run in path (see WriteImageGauges); a
// failed run keeps the image's last success.
func WriteTextfile(path string, run BackupRun) error {
	end := float64(run.End.UnixNano()) / 1e9
	values := []float64{end, 0, run.End.Sub(run.Start).Seconds(), float64(run.BytesSent), end}
	if run.Err == nil {
		values[1] = 1
	}
	gauges := make([]Gauge, len(textfileGauges))
	for i, g := range textfileGauges {
		gauges[i] = Gauge{Name: g.name, Help: g.help, Value: values[i]}
	}
	gauges[4].Keep = run.Err != nil
	return WriteImageGauges(path, run.Image, gauges)
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
