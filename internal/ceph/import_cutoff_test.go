package ceph

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/ferry-dr/ferry/internal/rbddiff"
)

// failAfter is a Source whose feed breaks after n records, as a backup's
// does when its publisher gives up or a chunk turns out bad.
type failAfter struct {
	rbddiff.Source
	n   int
	err error
}

func (f *failAfter) Next() (rbddiff.Record, error) {
	if f.n--; f.n < 0 {
		return rbddiff.Record{}, f.err
	}
	return f.Source.Next()
}

// TestImportCutOffGivesBuffersBack: an import whose source fails while a
// window's bytes are still gathered (not yet written) returns the source's
// error and every I/O buffer: none is leaked per cut-off import.
func TestImportCutOffGivesBuffersBack(t *testing.T) {
	_, backup := bedSites(t)
	r := rand.New(rand.NewPCG(21, 1))
	// Small data records inside one object: the importer gathers them in
	// one buffer that is still pending when the source fails.
	var ops []diffOp
	for off := uint64(0); off < 512<<10; off += 128 << 10 {
		ops = append(ops, diffOp{off, 4096, randomBytes(r, 4096)})
	}
	diff := writeDiff(t, rbddiff.Header{ToSnap: "s1", Size: 8 * mib}, ops)
	dst := newImage(t, backup, "dst", 1)
	gone := errors.New("the feed is gone")
	src := &failAfter{Source: rbddiff.NewReader(bytes.NewReader(diff)), n: 3, err: gone}
	_, err := backup.Import(context.Background(), dst, src, nil)
	if !errors.Is(err, gone) || errors.Is(err, errBuffersOut) {
		t.Fatalf("cut-off import returned %v, want the source's error and every buffer back", err)
	}
	if snaps, _ := backup.Snapshots(dst); len(snaps) != 0 {
		t.Fatalf("a cut-off import made snapshots %v", snaps)
	}
}
