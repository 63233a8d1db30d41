package consumer

import (
	"errors"
	"strings"
	"testing"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ferry"
)

var planTarget = ferry.ImageSpec{Pool: "backup", Image: "vm"}

// planCase is one state of the backup image and a backup onto it.
type planCase struct {
	name      string
	from      string // the backup's base; "": a full backup
	resync    bool
	force     bool // --force-rollback
	snaps     []string
	exists    bool
	importing string           // an import on record
	head      *ceph.HeadChange // what comparing the head finds; nil: no comparison is due
	since     string           // the snapshot the head is compared with
	want      action
	why       string // (a part of) the plan's reason, or of its error's text
	is        error  // the refusal wraps this
}

func (tc planCase) manifest() ferry.Manifest {
	return ferry.Manifest{BackupID: "b-new", SourceImageID: "id-new", VolumeID: "vol", FromSnap: tc.from, ToSnap: "ferry-9",
		Size: 8 << 20, Resync: tc.resync, ForceRollback: tc.force}
}

func planCases() []planCase {
	clean := &ceph.HeadChange{}
	written := &ceph.HeadChange{Bytes: 4096, Size: 8 << 20, SnapSize: 8 << 20}
	resized := &ceph.HeadChange{Resized: true, Size: 6 << 20, SnapSize: 8 << 20}
	two := []string{"ferry-1", "ferry-2"}
	const removing = "removing a cut-off first import before applying it again"
	return []planCase{
		{name: "full, no image", want: actCreate, why: "a full backup starts a new image"},
		{name: "full, no image, an import on record", importing: "b-old", want: actCreate, why: "a full backup starts a new image"},
		{name: "full, empty leftover, no import on record", exists: true, head: clean, since: "",
			want: actRemoveCreate, why: removing},
		{name: "full, data and no import on record", exists: true, head: written, since: "",
			want: actRefuse, is: ErrHeadWritten, why: "vm at the backup site has no snapshots but holds data (objects holding 4096 bytes written)"},
		{name: "full, cut-off first import", exists: true, importing: "b-old", want: actRemoveCreate, why: removing},
		{name: "full, snapshots, no resync", exists: true, snaps: two,
			want: actRefuse, why: "already holds snapshots (ferry-1, ferry-2) and this is a full backup: applying it would mix two chains"},
		{name: "full, snapshots, no resync, an import on record", exists: true, snaps: two, importing: "b-old",
			want: actRefuse, why: "would mix two chains"},
		{name: "full, snapshots, resync", exists: true, snaps: two, resync: true,
			want: actRenameCreate, why: "resync: kept the old backup image under a new name"},
		{name: "incremental, no image", from: "ferry-2", want: actWait, why: "base snapshot backup/vm@ferry-2 is not at the backup site (yet)"},
		{name: "incremental, base missing", from: "ferry-3", exists: true, snaps: two, importing: "b-old",
			want: actWait, why: "base snapshot backup/vm@ferry-3 is not at the backup site (yet)"},
		{name: "incremental on the newest, clean head", from: "ferry-2", exists: true, snaps: two, head: clean, since: "ferry-2",
			want: actApply, why: "the base is the newest snapshot"},
		{name: "base not newest", from: "ferry-1", exists: true, snaps: two, head: clean, since: "ferry-2",
			want: actRollback, why: "the base is not the newest snapshot of the backup image; rolling back to it"},
		{name: "import on record", from: "ferry-2", exists: true, snaps: two, importing: "b-old",
			want: actRollback, why: "an earlier import was cut off; rolling back to the base"},
		{name: "import on record, base not newest", from: "ferry-1", exists: true, snaps: two, importing: "b-old",
			want: actRollback, why: "an earlier import was cut off; rolling back to the base"},
		{name: "head written", from: "ferry-2", exists: true, snaps: two, head: written, since: "ferry-2",
			want: actRefuse, is: ErrHeadWritten, why: "differs from its newest snapshot ferry-2 (objects holding 4096 bytes written)"},
		{name: "head resized", from: "ferry-2", exists: true, snaps: two, head: resized, since: "ferry-2",
			want: actRefuse, is: ErrHeadWritten, why: "(resized from 8388608 to 6291456 bytes)"},
		{name: "head written, base not newest", from: "ferry-1", exists: true, snaps: two, head: written, since: "ferry-2",
			want: actRefuse, is: ErrHeadWritten, why: "differs from its newest snapshot ferry-2"},
		{name: "head written, force-rollback", from: "ferry-2", exists: true, snaps: two, head: written, since: "ferry-2", force: true,
			want: actRollback, why: "the backup image was written outside Ferry (objects holding 4096 bytes written); rolling back to the base, as the backup asks (--force-rollback)"},
		{name: "head written, base not newest, force-rollback", from: "ferry-1", exists: true, snaps: two, head: written, since: "ferry-2", force: true,
			want: actRollback, why: "the backup image was written outside Ferry (objects holding 4096 bytes written); rolling back to the base, as the backup asks (--force-rollback)"},
		{name: "clean head, force-rollback", from: "ferry-2", exists: true, snaps: two, head: clean, since: "ferry-2", force: true,
			want: actApply, why: "the base is the newest snapshot"},
	}
}

var actionNames = [...]string{"wait", "refuse", "check head", "apply", "create", "remove and create", "rename and create", "roll back"}

func (a action) String() string { return actionNames[a] }

// TestPlanDecide: each state of the backup image gets its action and
// reason, and the head is compared exactly where the decision depends on it.
func TestPlanDecide(t *testing.T) {
	for _, tc := range planCases() {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.manifest()
			f := facts{snaps: tc.snaps, exists: tc.exists, importing: tc.importing}
			p := decide(&m, planTarget, f)
			if tc.head != nil {
				if p.act != actCheckHead || p.since != tc.since {
					t.Fatalf("decided %v (since %q) without comparing the head; want it compared with %q", p.act, p.since, tc.since)
				}
				f.head = tc.head
				p = decide(&m, planTarget, f)
			}
			if p.act != tc.want {
				t.Fatalf("action %v, want %v (reason %q, error %v)", p.act, tc.want, p.reason, p.err)
			}
			why := p.reason
			if tc.want == actRefuse {
				if !isPermanent(p.err) || (tc.is != nil && !errors.Is(p.err, tc.is)) {
					t.Fatalf("refusal %#v: want a permanentError wrapping %v", p.err, tc.is)
				}
				why = p.err.Error()
			} else if p.err != nil {
				t.Fatalf("%v with error %v", p.act, p.err)
			}
			if !strings.Contains(why, tc.why) {
				t.Fatalf("reason %q, want %q in it", why, tc.why)
			}
		})
	}
}
