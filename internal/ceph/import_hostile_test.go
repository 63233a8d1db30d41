package ceph

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/rbddiff"
)

// records is a Source that hands out its records as they are, without the
// checks of a real reader.
type records struct {
	h    rbddiff.Header
	recs []rbddiff.Record
}

func (r *records) Header() (rbddiff.Header, error) { return r.h, nil }

func (r *records) Next() (rbddiff.Record, error) {
	if len(r.recs) == 0 {
		return rbddiff.Record{}, io.EOF
	}
	rec := r.recs[0]
	r.recs = r.recs[1:]
	return rec, nil
}

// TestImportRefusesRecordsPastTheImage: the import is the second line
// behind the readers' checks: a record that reaches past the image size
// fails with ferry.ErrInvalid before librbd sees it. Without the check,
// each of these imports reported success here (and data at 2^64-4096 has
// been seen to leave librbd waiting for good).
func TestImportRefusesRecordsPastTheImage(t *testing.T) {
	_, backup := bedSites(t)
	const size = 1 << 20
	page := func() io.Reader { return bytes.NewReader(make([]byte, 4096)) }
	for _, tc := range []struct {
		name string
		rec  rbddiff.Record
	}{
		{"data at 2^64-4096", rbddiff.Record{Kind: rbddiff.Data, Offset: math.MaxUint64 - 4095, Length: 4096, Payload: page()}},
		{"zero of 2^64-1 bytes", rbddiff.Record{Kind: rbddiff.Zero, Offset: 1, Length: math.MaxUint64}},
		{"data across the end", rbddiff.Record{Kind: rbddiff.Data, Offset: size - 100, Length: 4096, Payload: page()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := newImage(t, backup, "dst", 1)
			src := &records{h: rbddiff.Header{ToSnap: "s1", Size: size},
				recs: []rbddiff.Record{{Kind: rbddiff.Data, Offset: 0, Length: 4096, Payload: page()}, tc.rec}}
			done := make(chan error, 1)
			go func() {
				_, err := backup.Import(context.Background(), dst, src, nil)
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, ferry.ErrInvalid) {
					t.Fatalf("import: %v, want ferry.ErrInvalid", err)
				}
			case <-time.After(2 * time.Minute):
				t.Fatal("the import still runs after 2 minutes")
			}
			if snaps, _ := backup.Snapshots(dst); len(snaps) != 0 {
				t.Fatalf("a refused import made snapshots %v", snaps)
			}
		})
	}
}
