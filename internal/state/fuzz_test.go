package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/ferry"
)

// FuzzDecode feeds arbitrary bytes to Decode, as a state entry of the
// bucket: it must not panic, refuses with ferry.ErrInvalid, and what it
// accepts names the image and every confirmed snapshot, and survives a
// round trip unchanged.
func FuzzDecode(f *testing.F) {
	raw, err := json.Marshal(ferry.ImageState{Image: ferry.ImageSpec{Pool: "volumes", Image: "vm"}, SourceImageID: "id",
		BackupImage: ferry.ImageSpec{Pool: "volumes-dr", Image: "vm"}, Confirmed: []string{"ferry-1", "ferry-2"},
		LastSnapshot: "ferry-2", LastSuccess: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Status: ferry.StatusOK})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := Decode(raw)
		if err != nil {
			if !errors.Is(err, ferry.ErrInvalid) {
				t.Fatalf("error %v is not ferry.ErrInvalid", err)
			}
			return
		}
		if s.Image.Pool == "" || s.Image.Image == "" || s.Image.Snap != "" {
			t.Fatalf("accepted a state of image %+v", s.Image)
		}
		for _, c := range s.Confirmed {
			if c == "" {
				t.Fatal("accepted a confirmed snapshot without a name")
			}
		}
		enc, err := json.Marshal(s)
		if err != nil {
			return // a time json cannot write: never stored
		}
		back, err := Decode(enc)
		if err != nil {
			t.Fatalf("%s refused after a round trip: %v", enc, err)
		}
		if again, _ := json.Marshal(back); !bytes.Equal(again, enc) {
			t.Fatalf("round trip changed %s into %s", enc, again)
		}
	})
}
