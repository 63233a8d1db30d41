package consumer

import (
	"errors"
	"strings"
	"testing"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ferry"
)

// TestPlanKeepsSnapshots: whatever a manifest asks for (resync, force
// rollback, a full backup) and whatever the image's state, no plan removes
// an image that holds snapshots: a rollback drops only the head's writes,
// a resync keeps the old image.
func TestPlanKeepsSnapshots(t *testing.T) {
	for _, tc := range planCases() {
		for _, importing := range []string{"", "b-old"} {
			m := tc.manifest()
			f := facts{snaps: tc.snaps, exists: tc.exists, importing: importing, head: &ceph.HeadChange{Bytes: 4096}}
			if p := decide(&m, planTarget, f); p.act == actRemoveCreate && len(f.snaps) > 0 {
				t.Errorf("%s (importing %q): removes an image with snapshots %v", tc.name, importing, f.snaps)
			}
		}
	}
	p := keepsSnapshots(plan{act: actRemoveCreate}, planTarget, facts{exists: true, snaps: []string{"ferry-1"}})
	if p.act != actRefuse || !isPermanent(p.err) || !strings.Contains(p.err.Error(), "never removes a backup image with snapshots") {
		t.Fatalf("a removal of an image with snapshots: %v %v, want a refusal", p.act, p.err)
	}
	if p := keepsSnapshots(plan{act: actRemoveCreate}, planTarget, facts{exists: true}); p.act != actRemoveCreate {
		t.Fatalf("an image without snapshots may be replaced: got %v", p.act)
	}
}

// TestOwned: which backup images a manifest may touch, by the image's own
// marks alone.
func TestOwned(t *testing.T) {
	snaps := []string{"ferry-1"}
	for _, tc := range []struct {
		name      string
		resync    bool
		exists    bool
		snaps     []string
		owner     string
		adoptable bool
		refused   string
	}{
		{name: "no image", exists: false},
		{name: "unmarked, no snapshots (the head check decides)", exists: true},
		{name: "ours", exists: true, snaps: snaps, owner: "id-new"},
		{name: "unmarked with snapshots", exists: true, snaps: snaps, refused: "no ferry.source_image_id metadata: Ferry did not create it"},
		{name: "unmarked with snapshots, resync", exists: true, snaps: snaps, resync: true, refused: "Ferry did not create it"},
		{name: "unmarked, adoptable", exists: true, snaps: snaps, adoptable: true},
		{name: "another chain", exists: true, snaps: snaps, owner: "id-other", refused: "the backup of source image id id-other, not of id-new"},
		{name: "another chain, resync keeps it", exists: true, snaps: snaps, owner: "id-other", resync: true},
	} {
		m := ferry.Manifest{BackupID: "b", SourceImageID: "id-new", Resync: tc.resync}
		err := owned(&m, planTarget, tc.exists, tc.snaps, ownership{owner: tc.owner}, tc.adoptable)
		switch {
		case tc.refused == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.refused != "" && (!errors.Is(err, ErrNotOwned) || !isPermanent(err) || !strings.Contains(err.Error(), tc.refused)):
			t.Errorf("%s: %v, want a refusal saying %q", tc.name, err, tc.refused)
		}
	}
}

// TestAdoptable: only an image whose snapshots are all Ferry's, of the
// source image the state names, passes for an older Ferry's backup image.
func TestAdoptable(t *testing.T) {
	m := &ferry.Manifest{SourceImageID: "id-1"}
	st := &ferry.ImageState{SourceImageID: "id-1"}
	for _, tc := range []struct {
		snaps []string
		state string
		want  bool
	}{
		{[]string{"ferry-1", "ferry-2"}, "id-1", true},
		{[]string{"ferry-1", "snap1"}, "id-1", false},
		{nil, "id-1", false},
		{[]string{"ferry-1"}, "id-2", false},
	} {
		st.SourceImageID = tc.state
		if got := adoptable(st, m, tc.snaps); got != tc.want {
			t.Errorf("snapshots %v, state of %s: adoptable %v, want %v", tc.snaps, tc.state, got, tc.want)
		}
	}
}
