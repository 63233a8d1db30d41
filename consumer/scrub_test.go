package consumer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/recovery"
	"github.com/ferry-dr/ferry/internal/state"
	"github.com/ferry-dr/ferry/internal/testbed"
	"github.com/ferry-dr/ferry/publisher"
)

// TestScrub: the consumer records each backup's chunks; scrub finds a full
// and an incremental backup clean, then finds exactly the chunk holding one
// byte flipped in the backup cluster's RADOS object under the newest backup
// snapshot, and nothing in the older snapshot, which has its own copy.
func TestScrub(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "scrub"}))
	p.startConsumer()
	r := rand.New(rand.NewPCG(20, 21))
	img := cephtest.Image(t, source, "scrub", 24*mib)
	cephtest.Write(t, source, img, 0, randomBytes(r, 9*mib))
	cephtest.Write(t, source, img, 17*mib+123, randomBytes(r, 2*mib))
	full, _ := p.backupNow(img)
	cephtest.Write(t, source, img, 2*mib+77, randomBytes(r, 300<<10)) // object 0, which the full backup wrote too
	cephtest.Write(t, source, img, 13*mib, randomBytes(r, 64<<10))    // an object the full backup did not write
	inc, _ := p.backupNow(img)

	ctx := context.Background()
	records, err := state.OpenScrubRecords(ctx, p.consConn.Backup)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*publisher.Sent{full, inc} {
		rec, err := records.Get(ctx, img.AtSnap(m.ToSnap))
		if err != nil || rec == nil {
			t.Fatalf("scrub record of %s: %v, %v", m.ToSnap, rec, err)
		}
		if rec.DataBytes() != m.Stats.DataBytes || len(rec.Chunks) != m.Stats.Chunks {
			t.Fatalf("record of %s: %d bytes in %d chunks; the backup wrote %d bytes in %d chunks",
				m.ToSnap, rec.DataBytes(), len(rec.Chunks), m.Stats.DataBytes, m.Stats.Chunks)
		}
	}
	scrub := func(spec ferry.ImageSpec) recovery.ScrubReport {
		t.Helper()
		rep, err := recovery.Scrub(ctx, recovery.ScrubOptions{Backup: backup, Records: records, Image: spec}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	rep := scrub(img)
	if !rep.Clean() || !slices.Equal(rep.Checked, []string{full.ToSnap, inc.ToSnap}) || rep.DataBytes != full.Stats.DataBytes+inc.Stats.DataBytes {
		t.Fatalf("scrub of an intact backup: %+v", rep)
	}

	// Flip one byte the incremental wrote, in the head object: the newest
	// snapshot reads the head (no write since, so no clone of it), while the
	// full backup's snapshot has its own clone of that object.
	flip := uint64(2*mib + 77 + 1000)
	flipObject(t, testbed.Shared(t).Backup, img, flip)
	if cephtest.Content(t, backup, img.AtSnap(inc.ToSnap)) == cephtest.Content(t, source, img.AtSnap(inc.ToSnap)) {
		t.Fatal("the flipped byte did not reach the backup snapshot: the test corrupts nothing")
	}
	rec, _ := records.Get(ctx, img.AtSnap(inc.ToSnap))
	var want string
	for _, c := range rec.Chunks {
		for _, e := range c.Extents {
			if e.Offset() <= flip && flip < e.Offset()+e.Length() {
				want = c.Hash
			}
		}
	}
	requireOneMismatch := func(rep recovery.ScrubReport) {
		t.Helper()
		if len(rep.Mismatches) != 1 {
			t.Fatalf("scrub after one flipped byte: %d mismatches, want 1: %+v", len(rep.Mismatches), rep)
		}
		m := rep.Mismatches[0]
		if m.Snapshot != img.AtSnap(inc.ToSnap) || m.Chunk != want || flip < m.Offset || flip >= m.Offset+m.Length {
			t.Fatalf("scrub reports %+v; want chunk %s of %s around offset %d", m, want, inc.ToSnap, flip)
		}
	}
	requireOneMismatch(scrub(img))
	if rep := scrub(img.AtSnap(full.ToSnap)); !rep.Clean() || len(rep.Checked) != 1 {
		t.Fatalf("the older snapshot has its own copy of the object and must scrub clean: %+v", rep)
	}

	// A snapshot removed (retention) leaves a record that scrub removes; the
	// newest snapshot is then read in full, and the damage is still found.
	if err := backup.RemoveSnapshot(img.AtSnap(full.ToSnap)); err != nil {
		t.Fatal(err)
	}
	rep = scrub(img)
	requireOneMismatch(rep)
	if len(rep.StaleRemoved) != 1 || !slices.Equal(rep.Checked, []string{inc.ToSnap}) {
		t.Fatalf("after removing %s: %+v", full.ToSnap, rep)
	}
	if rec, err := records.Get(ctx, img.AtSnap(full.ToSnap)); rec != nil || err != nil {
		t.Fatalf("record of a removed snapshot still there: %v", err)
	}
}

// flipObject flips the byte at image offset off in img's head RADOS object
// on site, with the rados tool: no librbd, no snapshot context, so no clone
// is made and the newest snapshot, which shares the head, reads the flip.
func flipObject(t *testing.T, site *testbed.Site, img ferry.ImageSpec, off uint64) {
	t.Helper()
	var info struct {
		Prefix     string `json:"block_name_prefix"`
		ObjectSize uint64 `json:"object_size"`
	}
	if err := json.Unmarshal([]byte(site.Rbd(t, "info", "--format", "json", img.String())), &info); err != nil {
		t.Fatal(err)
	}
	if info.Prefix == "" || info.ObjectSize == 0 {
		t.Fatalf("rbd info: %+v", info)
	}
	obj := fmt.Sprintf("%s.%016x", info.Prefix, off/info.ObjectSize)
	file := filepath.Join(t.TempDir(), "object")
	rados(t, site, "-p", img.Pool, "get", obj, file)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	at := off % info.ObjectSize
	if at >= uint64(len(data)) {
		t.Fatalf("object %s holds %d bytes; offset %d is beyond it", obj, len(data), at)
	}
	data[at] ^= 0x5a
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	rados(t, site, "-p", img.Pool, "put", obj, file)
}

func rados(t *testing.T, site *testbed.Site, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testbed.CommandTimeout)
	defer cancel()
	if out, err := site.Command(ctx, "rados", args...).CombinedOutput(); err != nil {
		t.Fatalf("rados %v: %v: %s", args, err, out)
	}
}
