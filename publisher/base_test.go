package publisher

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ferry-dr/ferry/internal/ferry"
)

func TestChooseBase(t *testing.T) {
	img := ferry.ImageSpec{Pool: "p", Image: "vm"}
	st := &ferry.ImageState{Image: img, SourceImageID: "id1", Confirmed: []string{"ferry-1", "ferry-2"}}
	for _, tc := range []struct {
		name    string
		state   *ferry.ImageState
		id      string
		snaps   []string
		to      string
		resync  bool
		want    string
		wantErr error
	}{
		{name: "first backup", state: nil, id: "id1", snaps: []string{"ferry-1"}, to: "ferry-1", want: ""},
		{name: "newest confirmed", state: st, id: "id1", snaps: []string{"ferry-1", "ferry-2", "ferry-3"}, to: "ferry-3", want: "ferry-2"},
		{name: "pruned newest falls back", state: st, id: "id1", snaps: []string{"ferry-1", "ferry-3"}, to: "ferry-3", want: "ferry-1"},
		{name: "recreated image", state: st, id: "id2", snaps: []string{"ferry-3"}, to: "ferry-3", wantErr: ErrLineage},
		{name: "no common snapshot", state: st, id: "id1", snaps: []string{"ferry-3"}, to: "ferry-3", wantErr: ErrLineage},
		{name: "resync", state: st, id: "id2", snaps: []string{"ferry-3"}, to: "ferry-3", resync: true, want: ""},
		{name: "already confirmed", state: st, id: "id1", snaps: []string{"ferry-1", "ferry-2"}, to: "ferry-2", wantErr: ErrAlreadyConfirmed},
		{name: "an operator's snapshot is no base", state: &ferry.ImageState{Image: img, SourceImageID: "id1", Confirmed: []string{"ferry-1", "manual"}},
			id: "id1", snaps: []string{"ferry-1", "manual", "ferry-3"}, to: "ferry-3", want: "ferry-1"},
		{name: "base must be older", state: st, id: "id1", snaps: []string{"ferry-3", "ferry-1", "ferry-2"}, to: "ferry-3", wantErr: ErrLineage},
	} {
		got, err := chooseBase(tc.state, tc.id, tc.snaps, tc.to, tc.resync)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("%s: err = %v, want %v", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: base = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

// TestPruningProperties replays random histories of backups that succeed,
// fail, or are still in flight, with operator snapshots mixed in, and
// checks after every step that pruning keeps the safety rules:
//   - it never deletes the newest confirmed snapshot (the base of the next
//     incremental),
//   - never an unconfirmed snapshot newer than it (its backup may be on its way),
//   - never a snapshot Ferry did not create,
//   - the next backup can always start from a snapshot both sites hold,
//   - and no snapshot of Ferry's older than the base is left (each costs the
//     image write performance).
func TestPruningProperties(t *testing.T) {
	for seed := range uint64(500) {
		r := rand.New(rand.NewPCG(seed, 7))
		var source []string            // snapshots on the source, oldest first
		confirmed := map[string]bool{} // snapshots the backup site holds
		id := 0
		for step := range 40 {
			switch r.IntN(10) {
			case 0: // an operator's own snapshot
				source = append(source, fmt.Sprintf("manual-%d", step))
			default: // a Ferry backup: snapshot, then it succeeds, fails, or stays in flight
				id++
				snap := fmt.Sprintf("%s%04d", ferry.SnapshotPrefix, id)
				st := &ferry.ImageState{SourceImageID: "img", Confirmed: keys(confirmed)}
				base, err := chooseBase(st, "img", append(slices.Clone(source), snap), snap, false)
				if err != nil {
					t.Fatalf("seed %d step %d: no base though the sites share %v: %v", seed, step, st.Confirmed, err)
				}
				if base != "" && (!confirmed[base] || !slices.Contains(source, base)) {
					t.Fatalf("seed %d step %d: base %q is not held by both sites", seed, step, base)
				}
				source = append(source, snap)
				if r.IntN(3) > 0 {
					confirmed[snap] = true
				}
			}
			before := slices.Clone(source)
			pruned := prunable(source, func(s string) bool { return confirmed[s] })
			newest := ""
			for _, s := range source {
				if ferry.IsFerrySnapshot(s) && confirmed[s] {
					newest = s
				}
			}
			for _, p := range pruned {
				switch {
				case !ferry.IsFerrySnapshot(p):
					t.Fatalf("seed %d step %d: pruned %q, which Ferry did not create", seed, step, p)
				case !confirmed[p] && slices.Index(source, p) > slices.Index(source, newest):
					t.Fatalf("seed %d step %d: pruned %q, unconfirmed and newer than the base %q", seed, step, p, newest)
				case p == newest:
					t.Fatalf("seed %d step %d: pruned the base %q", seed, step, p)
				}
				source = slices.DeleteFunc(source, func(s string) bool { return s == p })
			}
			if newest != "" && !slices.Contains(source, newest) {
				t.Fatalf("seed %d step %d: base %q gone from %v (was %v)", seed, step, newest, source, before)
			}
			// Of Ferry's snapshots up to the base, the base alone stays.
			for _, s := range source {
				if newest == "" || s == newest {
					break
				}
				if ferry.IsFerrySnapshot(s) {
					t.Fatalf("seed %d step %d: %q not pruned though %q is confirmed after it", seed, step, s, newest)
				}
			}
		}
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestPrunable(t *testing.T) {
	for _, tc := range []struct {
		name      string
		source    []string
		confirmed []string
		want      []string
	}{
		{name: "nothing confirmed yet", source: []string{"ferry-1", "ferry-2"}, want: nil},
		{name: "older confirmed", source: []string{"ferry-1", "ferry-2"}, confirmed: []string{"ferry-1", "ferry-2"}, want: []string{"ferry-1"}},
		{name: "cut-off backup before the base", source: []string{"ferry-1", "ferry-2", "ferry-3"}, confirmed: []string{"ferry-1", "ferry-3"}, want: []string{"ferry-1", "ferry-2"}},
		{name: "backup on its way after the base", source: []string{"ferry-1", "ferry-2", "ferry-3"}, confirmed: []string{"ferry-2"}, want: []string{"ferry-1"}},
		{name: "chain replaced by --resync", source: []string{"ferry-1", "ferry-2", "ferry-9"}, confirmed: []string{"ferry-9"}, want: []string{"ferry-1", "ferry-2"}},
		{name: "operator's snapshots stay", source: []string{"mine", "ferry-1", "also-mine", "ferry-2"}, confirmed: []string{"ferry-2"}, want: []string{"ferry-1"}},
	} {
		got := prunable(tc.source, func(s string) bool { return slices.Contains(tc.confirmed, s) })
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: prunable(%v) with %v confirmed = %v, want %v", tc.name, tc.source, tc.confirmed, got, tc.want)
		}
	}
}
