package feed

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/ferry-dr/ferry/internal/ferry"
)

// FuzzDecode feeds arbitrary bytes to decode, as a feed message: it must
// not panic, refuses with ferry.ErrInvalid, and what it accepts is what
// NextPage relies on (a page has its number and address, an end its
// counts) and survives a round trip unchanged.
func FuzzDecode(f *testing.F) {
	for _, m := range []message{
		{Kind: kindStart, BackupID: "b", Attempt: "a"},
		{Kind: kindPage, BackupID: "b", Attempt: "a", Index: 3, Page: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
		{Kind: kindAlive, BackupID: "b", Attempt: "a"},
		{Kind: kindEnd, BackupID: "b", Attempt: "a", End: &End{Pages: 4, Extents: 100, Stats: ferry.BackupStats{DataBytes: 5}}},
		{Kind: kindAbort, BackupID: "b", Attempt: "a", Error: "gone"},
	} {
		raw, err := json.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := decode(raw)
		if err != nil {
			if !errors.Is(err, ferry.ErrInvalid) {
				t.Fatalf("error %v is not ferry.ErrInvalid", err)
			}
			return
		}
		switch m.Kind {
		case kindPage:
			if m.Index < 0 || m.Page == "" {
				t.Fatalf("accepted page message %+v", m)
			}
		case kindEnd:
			if m.End == nil || m.End.Pages < 0 || m.End.Extents < 0 {
				t.Fatalf("accepted end message %+v", m)
			}
		}
		enc, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decode(enc)
		if err != nil {
			t.Fatalf("%s refused after a round trip: %v", enc, err)
		}
		if again, _ := json.Marshal(back); !bytes.Equal(again, enc) {
			t.Fatalf("round trip changed %s into %s", enc, again)
		}
	})
}
