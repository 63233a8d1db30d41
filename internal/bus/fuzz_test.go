package bus

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/ferry"
)

// FuzzResult: DecodeResult gets arbitrary bytes on either subject of a
// backup result. It never panics, every refusal is ferry.ErrInvalid (damaged)
// or ferry.ErrRefused (names or subject), and
// what it accepts keeps Validate's promises and survives a round trip.
func FuzzResult(f *testing.F) {
	img := ferry.ImageSpec{Pool: "volumes", Image: "vm", Snap: "ferry-1"}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, r := range []ferry.BackupResult{
		{Kind: ferry.ResultConfirmed, BackupID: "id/volumes/vm@ferry-1", Image: img, Time: at},
		{Kind: ferry.ResultChunksMissing, BackupID: "id/volumes/vm@ferry-1", Image: img, Error: "chunk missing",
			MissingChunks: []string{"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}, Time: at},
	} {
		raw, err := json.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, prefix := range []string{ConfirmedSubject, FailedSubject} {
			subject := Subject(prefix, img.AtSnap(""))
			r, err := DecodeResult(subject, nil, raw, nil)
			if err != nil {
				if !errors.Is(err, ferry.ErrInvalid) && !errors.Is(err, ferry.ErrRefused) {
					t.Fatalf("error %v is neither ErrInvalid nor ErrRefused", err)
				}
				continue
			}
			if err := r.Validate(); err != nil {
				t.Fatalf("accepted an invalid result %+v: %v", r, err)
			}
			again, err := json.Marshal(r)
			if err != nil {
				continue // a time json cannot write (year past 9999): never sent
			}
			back, err := DecodeResult(subject, nil, again, nil)
			if err != nil {
				t.Fatalf("%s, accepted once, is refused after a round trip: %v", again, err)
			}
			if twice, _ := json.Marshal(back); !bytes.Equal(twice, again) {
				t.Fatalf("round trip changed %s into %s", again, twice)
			}
		}
	})
}
