package bench

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// section is one Markdown table of the report.
type section struct {
	title string
	cols  []string
	rows  [][]string
	notes []string
}

func (s *section) add(cells ...string) { s.rows = append(s.rows, cells) }

func (s *section) markdown(b *strings.Builder) {
	fmt.Fprintf(b, "### %s\n\n", s.title)
	fmt.Fprintf(b, "| %s |\n", strings.Join(s.cols, " | "))
	seps := make([]string, len(s.cols))
	for i := range seps {
		seps[i] = "---"
	}
	fmt.Fprintf(b, "| %s |\n", strings.Join(seps, " | "))
	for _, r := range s.rows {
		for len(r) < len(s.cols) {
			r = append(r, "")
		}
		fmt.Fprintf(b, "| %s |\n", strings.Join(r, " | "))
	}
	b.WriteString("\n")
	for _, n := range s.notes {
		fmt.Fprintf(b, "- %s\n", n)
	}
	if len(s.notes) > 0 {
		b.WriteString("\n")
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// mbps formats bytes per duration in MB/s (10^6 bytes).
func mbps(bytes int64, d time.Duration) string {
	return fmt.Sprintf("%.0f MB/s", float64(bytes)/1e6/d.Seconds())
}

func secs(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

// speedup formats how many times faster a is than b (b's time over a's).
func speedup(a, b time.Duration) string {
	return fmt.Sprintf("%.2fx", b.Seconds()/a.Seconds())
}

func rss(kib int64) string {
	if kib <= 0 {
		return "?"
	}
	return fmt.Sprintf("%.0f MiB", float64(kib)/1024)
}

func size(n int64) string {
	switch {
	case n >= gib:
		return fmt.Sprintf("%.2f GiB", float64(n)/gib)
	case n >= mib:
		return fmt.Sprintf("%.1f MiB", float64(n)/mib)
	case n >= kib:
		return fmt.Sprintf("%.1f KiB", float64(n)/kib)
	}
	return fmt.Sprintf("%d B", n)
}

func pct(a, b int64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(a)/float64(b))
}

// verdict states a target and whether the figure meets it.
func verdict(target string, met bool) string {
	if met {
		return target + ": met"
	}
	return target + ": **missed**"
}
