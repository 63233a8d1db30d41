package health

import (
	"strings"
	"testing"
	"time"
)

// TestSilentDaemons: a daemon that missed three beats is reported silent,
// and is a problem unless another of its role runs (it moved host); one
// that stopped on purpose is no problem; an outage a running daemon
// reports is one, with since when.
func TestSilentDaemons(t *testing.T) {
	now := time.Date(2026, 12, 8, 3, 0, 0, 0, time.UTC)
	stopped := now.Add(-time.Hour)
	beat := func(role, host string, ago time.Duration) Record {
		return Record{Role: role, Host: host, Heartbeat: now.Add(-ago), IntervalSeconds: 10}
	}
	cases := []struct {
		name    string
		records []Record
		want    []string // problems, by a part of each
	}{
		{"all running", []Record{beat("publisher", "a", 5*time.Second), beat("consumer", "b", 9*time.Second)}, nil},
		{"publisher silent", []Record{beat("publisher", "a", 31*time.Second)}, []string{"publisher on a has been silent since 2026-12-08T02:59:29Z"}},
		{"moved host", []Record{beat("publisher", "a", time.Hour), beat("publisher", "c", time.Second)}, nil},
		{"stopped", []Record{{Role: "consumer", Host: "b", Heartbeat: stopped, Stopped: &stopped}}, nil},
		{"unreachable", []Record{func() Record {
			r := beat("publisher", "a", time.Second)
			r.Unreachable = &Outage{What: "the backup site", Since: now.Add(-3 * time.Minute), Error: "no responders"}
			return r
		}()}, []string{"publisher on a cannot reach the backup site since 2026-12-08T02:57:00Z (for 3m0s): no responders"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &Report{}
			records := map[string]Record{}
			for _, rec := range c.records {
				records[Key(rec.Role, rec.Host)] = rec
			}
			r.addDaemons(records, now)
			if len(r.Problems) != len(c.want) {
				t.Fatalf("problems %q, want %d", r.Problems, len(c.want))
			}
			for i, want := range c.want {
				if !strings.Contains(r.Problems[i], want) {
					t.Errorf("problem %q lacks %q", r.Problems[i], want)
				}
			}
		})
	}
}
