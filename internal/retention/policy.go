package retention

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Period is a retention category's bucket length. A month is 30 days and a
// year 365 days: buckets count back from now, not along the calendar, so a
// decision never depends on the time zone.
type Period string

const (
	Latest Period = "latest"
	Hours  Period = "hours"
	Days   Period = "days"
	Weeks  Period = "weeks"
	Months Period = "months"
	Years  Period = "years"
)

var periodLength = map[Period]time.Duration{
	Hours:  time.Hour,
	Days:   24 * time.Hour,
	Weeks:  7 * 24 * time.Hour,
	Months: 30 * 24 * time.Hour,
	Years:  365 * 24 * time.Hour,
}

// periodOrder is the order in which a policy is printed.
var periodOrder = []Period{Latest, Hours, Days, Weeks, Months, Years}

// Policy says how many snapshots to keep per category, like Benji's
// "latest3,days7,weeks4,months12": the 3 newest snapshots, and for each of the
// last 7 days, 4 weeks and 12 months (counted back from now) the oldest
// snapshot of that day, week or month. A snapshot kept by any rule stays.
// Keeping the oldest of a period makes the choice stable as new backups come.
type Policy map[Period]int

// ParsePolicy parses "latest3,days7,weeks4,months12".
func ParsePolicy(s string) (Policy, error) {
	p := Policy{}
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("retention policy is empty; write e.g. latest3,days7,weeks4,months12")
	}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		name := strings.TrimRight(item, "0123456789")
		digits := item[len(name):]
		period := Period(name)
		if _, known := periodLength[period]; !known && period != Latest {
			return nil, fmt.Errorf("retention policy %q: unknown category %q in %q; use latest, hours, days, weeks, months or years followed by a count, e.g. days7", s, name, item)
		}
		if digits == "" {
			return nil, fmt.Errorf("retention policy %q: %q has no count; write e.g. %s7", s, item, name)
		}
		n, err := strconv.Atoi(digits)
		if err != nil || n < 1 || n > 100000 {
			return nil, fmt.Errorf("retention policy %q: count in %q must be between 1 and 100000", s, item)
		}
		if _, dup := p[period]; dup {
			return nil, fmt.Errorf("retention policy %q: %s appears twice", s, name)
		}
		p[period] = n
	}
	return p, nil
}

// String prints the policy in canonical order.
func (p Policy) String() string {
	var parts []string
	for _, period := range periodOrder {
		if n, ok := p[period]; ok {
			parts = append(parts, fmt.Sprintf("%s%d", period, n))
		}
	}
	return strings.Join(parts, ",")
}

// SnapshotWithTime is one backup snapshot as retention sees it.
type SnapshotWithTime struct {
	Name string
	Time time.Time // when the backup was taken
	// Pinned snapshots are never removed, whatever the policy: the base of the
	// next incremental backup, as the state bucket names it.
	Pinned bool
}

// Keep splits snapshots into those the policy keeps and those it removes,
// both oldest first. The newest snapshot (the base of the next incremental)
// and pinned snapshots are always kept. Keep is a pure function, and
// idempotent: Keep applied to its own kept set keeps all of it.
func Keep(snapshots []SnapshotWithTime, p Policy, now time.Time) (keep, remove []SnapshotWithTime) {
	snaps := append([]SnapshotWithTime(nil), snapshots...)
	sort.SliceStable(snaps, func(i, j int) bool { return snaps[i].Time.Before(snaps[j].Time) })
	keepIdx := make([]bool, len(snaps))
	for i, s := range snaps {
		keepIdx[i] = s.Pinned
	}
	if n := len(snaps); n > 0 {
		keepIdx[n-1] = true
	}
	for i := len(snaps) - 1; i >= 0 && i >= len(snaps)-p[Latest]; i-- {
		keepIdx[i] = true
	}
	for period, length := range periodLength {
		count, ok := p[period]
		if !ok {
			continue
		}
		// Oldest first, so the first snapshot seen in a bucket is its oldest.
		seen := map[int64]bool{}
		for i, s := range snaps {
			b := bucket(s.Time, now, length)
			if b >= int64(count) || seen[b] {
				continue
			}
			seen[b] = true
			keepIdx[i] = true
		}
	}
	for i, s := range snaps {
		if keepIdx[i] {
			keep = append(keep, s)
		} else {
			remove = append(remove, s)
		}
	}
	return keep, remove
}

// bucket returns how many periods before now t lies (0 = the current period).
// A time in the future (clock skew) counts as now.
func bucket(t, now time.Time, length time.Duration) int64 {
	age := max(now.Sub(t), 0)
	return int64(age / length)
}

// Names lists the snapshots' names, in their order.
func Names(snaps []SnapshotWithTime) []string {
	out := make([]string, len(snaps))
	for i, s := range snaps {
		out[i] = s.Name
	}
	return out
}
