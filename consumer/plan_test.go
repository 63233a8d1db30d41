package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ferry"
)

var planTarget = ferry.ImageSpec{Pool: "backup", Image: "vm"}

// oldImageID is the source image id the state holds before a backup.
const oldImageID = "id-old"

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

// recorder stands in for the backup cluster, the state bucket and the log
// of a prepare: it notes every call in order, and fails the one named fail.
type recorder struct {
	head  ceph.HeadChange
	fail  string
	calls []string
	put   []ferry.ImageState // the state as each Put stored it
}

var errRecorded = errors.New("failed as the test asks")

func (r *recorder) note(call string, args ...any) error {
	r.calls = append(r.calls, strings.TrimSpace(fmt.Sprintln(append([]any{call}, args...)...)))
	if call == r.fail {
		return errRecorded
	}
	return nil
}

func (r *recorder) HeadChangedSince(image ferry.ImageSpec, snap string) (ceph.HeadChange, error) {
	return r.head, r.note("head", image, snap)
}
func (r *recorder) RollbackToSnapshot(snap ferry.ImageSpec) error { return r.note("rollback", snap) }
func (r *recorder) RenameImage(image ferry.ImageSpec, newName string) error {
	return r.note("rename", image, newName)
}
func (r *recorder) RemoveImage(image ferry.ImageSpec) error { return r.note("remove", image) }
func (r *recorder) CreateImage(image ferry.ImageSpec, size uint64) error {
	return r.note("create", image, size)
}
func (r *recorder) Put(_ context.Context, st *ferry.ImageState) error {
	r.put = append(r.put, *st)
	return r.note("record")
}

// The log, as a slog.Handler: each record as "log LEVEL message key=value...".
func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	args := []any{rec.Level, rec.Message}
	rec.Attrs(func(a slog.Attr) bool { args = append(args, a.String()); return true })
	return r.note("log", args...)
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// TestPlanRecordsImportFirst: prepare records the import before its first
// change to the image, for every plan that changes it, and changes nothing
// when it refuses, waits, or cannot record. Each case runs once as it is
// and once with each call failing: a failed call is the last one made.
func TestPlanRecordsImportFirst(t *testing.T) {
	changes := []string{"rollback", "rename", "remove", "create"}
	isChange := func(call string) bool { return slices.Contains(changes, strings.Fields(call)[0]) }
	for _, tc := range planCases() {
		for _, fail := range append([]string{"", "head", "record"}, changes...) {
			rec := &recorder{fail: fail}
			if tc.head != nil {
				rec.head = *tc.head
			}
			p := preparer{img: rec, book: rec, retry: 7 * time.Second, log: slog.New(rec)}
			m := tc.manifest()
			st := &ferry.ImageState{SourceImageID: oldImageID, Confirmed: tc.snaps, Importing: tc.importing}
			err := p.prepare(context.Background(), st, &m, planTarget, tc.snaps, tc.exists)

			want, failed := tc.calls(rec), false
			for i, call := range want {
				if strings.Fields(call)[0] == fail {
					want, failed = want[:i+1], true
					break
				}
			}
			if !slices.Equal(rec.calls, want) {
				t.Fatalf("%s, %q failing: calls\n\t%s\nwant\n\t%s", tc.name, fail, strings.Join(rec.calls, "\n\t"), strings.Join(want, "\n\t"))
			}
			// The rule itself, whatever the expected calls say.
			if i := slices.IndexFunc(rec.calls, isChange); i >= 0 && !slices.Contains(rec.calls[:i], "record") {
				t.Fatalf("%s: the image changed before the import was recorded: %v", tc.name, rec.calls)
			}
			if len(rec.put) > 0 {
				requireRecorded(t, tc, rec.put[0])
			}

			var wait *waitError
			switch {
			case failed:
				if !errors.Is(err, errRecorded) {
					t.Fatalf("%s, %q failing: error %v, want the failure", tc.name, fail, err)
				}
			case tc.want == actWait:
				if !errors.As(err, &wait) || wait.delay != p.retry || !strings.Contains(err.Error(), tc.why) {
					t.Fatalf("%s: error %#v, want a waitError after %v", tc.name, err, p.retry)
				}
			case tc.want == actRefuse:
				if !isPermanent(err) || !strings.Contains(err.Error(), tc.why) {
					t.Fatalf("%s: error %v, want the refusal", tc.name, err)
				}
			case err != nil:
				t.Fatalf("%s: %v", tc.name, err)
			}
		}
	}
}

// calls are what prepare should call for tc, in order, as recorder notes them.
func (tc planCase) calls(rec *recorder) []string {
	var calls []string
	if tc.head != nil {
		calls = append(calls, strings.TrimSpace(fmt.Sprintln("head", planTarget, tc.since)))
	}
	create := fmt.Sprint("create ", planTarget, " ", 8<<20)
	switch tc.want {
	case actApply:
		calls = append(calls, "record")
	case actCreate:
		calls = append(calls, "record", create)
	case actRemoveCreate:
		calls = append(calls, "record", "log WARN "+tc.why, "remove "+planTarget.String(), create)
	case actRenameCreate:
		kept := "vm.pre-resync-?"
		for _, c := range rec.calls {
			if s, ok := strings.CutPrefix(c, "rename "+planTarget.String()+" "); ok {
				kept = s
			}
		}
		calls = append(calls, "record", "rename "+planTarget.String()+" "+kept, "log WARN "+tc.why+" kept_as="+kept, create)
	case actRollback:
		calls = append(calls, "record", fmt.Sprintf("log WARN %s base=%s newest=%s cut_off=%s", tc.why, tc.from, tc.snaps[len(tc.snaps)-1], tc.importing),
			"rollback "+planTarget.AtSnap(tc.from).String())
	}
	return calls
}

// requireRecorded checks the state prepare recorded before changing the image.
func requireRecorded(t *testing.T, tc planCase, st ferry.ImageState) {
	t.Helper()
	m := tc.manifest()
	if st.Importing != m.BackupID || st.Status != ferry.StatusRunning || st.VolumeID != m.VolumeID || st.LastAttempt.IsZero() {
		t.Fatalf("%s: recorded %+v, want backup %s importing", tc.name, st, m.BackupID)
	}
	id, confirmed := oldImageID, tc.snaps
	if tc.want == actRenameCreate { // a new chain
		id, confirmed = m.SourceImageID, nil
	}
	if st.SourceImageID != id || !slices.Equal(st.Confirmed, confirmed) {
		t.Fatalf("%s: recorded source image id %s and confirmed %v, want %s and %v", tc.name, st.SourceImageID, st.Confirmed, id, confirmed)
	}
}
