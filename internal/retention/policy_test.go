package retention

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParsePolicy(t *testing.T) {
	good := map[string]string{
		"latest3,days7,weeks4,months12": "latest3,days7,weeks4,months12",
		"months12, latest3":             "latest3,months12",
		"hours24,years2":                "hours24,years2",
	}
	for in, want := range good {
		p, err := ParsePolicy(in)
		if err != nil || p.String() != want {
			t.Errorf("ParsePolicy(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	bad := map[string]string{
		"":                "empty",
		"days":            "has no count",
		"days0":           "between 1 and",
		"fortnights2":     "unknown category",
		"days7,days3":     "appears twice",
		"latest3,,days7":  "unknown category",
		"7days":           "unknown category",
		"days99999999999": "between 1 and",
	}
	for in, want := range bad {
		if _, err := ParsePolicy(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePolicy(%q): err %v, want one that says %q", in, err, want)
		}
	}
}

// TestKeepProperties checks Keep against the policy's definition over random
// policies and histories.
func TestKeepProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for iter := range 3000 {
		p := Policy{}
		for _, period := range periodOrder {
			if r.IntN(2) == 0 {
				p[period] = 1 + r.IntN(12)
			}
		}
		span := []time.Duration{time.Hour, 48 * time.Hour, 60 * 24 * time.Hour, 3 * 365 * 24 * time.Hour}[r.IntN(4)]
		snaps := make([]SnapshotWithTime, r.IntN(60))
		for i := range snaps {
			age := time.Duration(r.Int64N(int64(span)))
			if r.IntN(20) == 0 {
				age = -time.Duration(r.Int64N(int64(time.Hour))) // clock skew: from the future
			}
			snaps[i] = SnapshotWithTime{Name: fmt.Sprintf("s%d", i), Time: now.Add(-age).Truncate(time.Second), Pinned: r.IntN(15) == 0}
		}
		keep, remove := Keep(snaps, p, now)
		where := fmt.Sprintf("iteration %d, policy %s, %d snapshots", iter, p, len(snaps))
		checkKeep(t, where, snaps, p, now, keep, remove)

		again, removed := Keep(keep, p, now)
		if len(removed) != 0 || !slices.Equal(Names(again), Names(keep)) {
			t.Fatalf("%s: not idempotent: applied to its own result it removes %v", where, Names(removed))
		}
	}
}

func checkKeep(t *testing.T, where string, snaps []SnapshotWithTime, p Policy, now time.Time, keep, remove []SnapshotWithTime) {
	t.Helper()
	kept := map[string]bool{}
	for _, s := range keep {
		kept[s.Name] = true
	}
	for _, s := range remove {
		if kept[s.Name] {
			t.Fatalf("%s: %s both kept and removed", where, s.Name)
		}
	}
	if len(keep)+len(remove) != len(snaps) {
		t.Fatalf("%s: %d kept + %d removed != %d", where, len(keep), len(remove), len(snaps))
	}
	if len(snaps) == 0 {
		return
	}
	sorted := slices.Clone(snaps)
	slices.SortStableFunc(sorted, func(a, b SnapshotWithTime) int { return a.Time.Compare(b.Time) })

	// Why each snapshot must be kept; anything kept without a reason is an error.
	needed := map[string]bool{sorted[len(sorted)-1].Name: true} // the newest: the next base
	for _, s := range sorted {
		if s.Pinned {
			needed[s.Name] = true
		}
	}
	for i := len(sorted) - 1; i >= 0 && i >= len(sorted)-p[Latest]; i-- {
		needed[sorted[i].Name] = true
	}
	for period, length := range periodLength {
		n, ok := p[period]
		if !ok {
			continue
		}
		for b := range int64(n) {
			for _, s := range sorted { // the first in the bucket is its oldest
				if max(now.Sub(s.Time), 0)/length == time.Duration(b) {
					needed[s.Name] = true
					break
				}
			}
		}
	}
	for name := range needed {
		if !kept[name] {
			t.Fatalf("%s: %s is required by the policy (or is the newest, or pinned) but removed", where, name)
		}
	}
	for name := range kept {
		if !needed[name] {
			t.Fatalf("%s: %s kept though no rule asks for it", where, name)
		}
	}
}
