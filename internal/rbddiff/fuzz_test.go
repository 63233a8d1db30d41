package rbddiff

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// FuzzReader feeds arbitrary bytes to the Reader. It must never panic, every
// record it returns must respect the invariants importers rely on, every
// failure must be a *FormatError, and any stream it accepts must survive a
// Writer round trip unchanged.
func FuzzReader(f *testing.F) {
	for _, s := range []string{goldenV1, goldenV2, goldenV2Head} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		h, err := r.Header()
		if err != nil {
			checkFuzzErr(t, err, len(data))
			return
		}
		if len(h.FromSnap) > MaxSnapNameLen || len(h.ToSnap) > MaxSnapNameLen {
			t.Fatalf("accepted a snapshot name over %d bytes", MaxSnapNameLen)
		}
		var exts []extent
		var prevEnd uint64
		for {
			rec, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				checkFuzzErr(t, err, len(data))
				return
			}
			if rec.Offset < prevEnd {
				t.Fatalf("record 0x%x+0x%x starts before the previous end 0x%x", rec.Offset, rec.Length, prevEnd)
			}
			if rec.Offset > h.Size || rec.Length > h.Size-rec.Offset {
				t.Fatalf("record 0x%x+0x%x exceeds size 0x%x", rec.Offset, rec.Length, h.Size)
			}
			prevEnd = rec.Offset + rec.Length
			e := extent{Kind: rec.Kind, Offset: rec.Offset, Length: rec.Length}
			switch rec.Kind {
			case Data:
				// Bounded by the input, since a payload cannot outgrow its stream.
				b, err := io.ReadAll(rec.Payload)
				if err != nil {
					checkFuzzErr(t, err, len(data))
					if _, err2 := r.Next(); err2 != err {
						t.Fatalf("Next after payload error = %v, want %v", err2, err)
					}
					return
				}
				if uint64(len(b)) != rec.Length {
					t.Fatalf("payload gave %d bytes, record says %d", len(b), rec.Length)
				}
				e.Data = string(b)
			case Zero:
				if rec.Payload != nil {
					t.Fatal("zero record with a payload")
				}
			default:
				t.Fatalf("unknown kind %v", rec.Kind)
			}
			exts = append(exts, e)
		}

		// Re-encode what was accepted and read it back.
		var buf bytes.Buffer
		w := NewWriter(&buf, r.Format())
		if err := w.WriteHeader(h); err != nil {
			t.Fatalf("WriteHeader(%+v): %v", h, err)
		}
		for _, e := range exts {
			if e.Kind == Data {
				err = w.WriteData(e.Offset, []byte(e.Data))
			} else {
				err = w.WriteZero(e.Offset, e.Length)
			}
			if err != nil {
				t.Fatalf("re-encoding %v: %v", e, err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		h2, exts2, err := readAll(NewReader(&buf))
		if err != nil {
			t.Fatalf("re-encoded stream does not read back: %v", err)
		}
		if r.Format() == V1 || h.ToSnap == "" {
			h.Protected = false // not expressible there, so the Writer drops it
		}
		if h2 != h || !reflect.DeepEqual(exts2, exts) {
			t.Fatalf("round trip changed the diff:\n got %+v %v\nwant %+v %v", h2, exts2, h, exts)
		}
	})
}

func checkFuzzErr(t *testing.T, err error, n int) {
	t.Helper()
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *FormatError", err, err)
	}
	if fe.Offset < 0 || fe.Offset > int64(n) {
		t.Fatalf("error offset %d outside the %d-byte stream: %v", fe.Offset, n, err)
	}
}

// The checked-in seeds say what they are: valid_* decode, broken_* fail.
func TestSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzReader")
	files, err := os.ReadDir(dir)
	mustNil(t, err)
	for _, fi := range files {
		raw, err := os.ReadFile(filepath.Join(dir, fi.Name()))
		mustNil(t, err)
		data, ok := parseCorpusFile(string(raw))
		if !ok {
			t.Errorf("%s: not in Go fuzz corpus format", fi.Name())
			continue
		}
		_, _, err = readAll(NewReader(bytes.NewReader(data)))
		switch {
		case strings.HasPrefix(fi.Name(), "valid_") && err != nil:
			t.Errorf("%s: %v", fi.Name(), err)
		case strings.HasPrefix(fi.Name(), "broken_"):
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Errorf("%s: error = %v, want a *FormatError", fi.Name(), err)
			}
		}
	}
}

// parseCorpusFile reads a one-value []byte corpus file.
func parseCorpusFile(s string) ([]byte, bool) {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" {
		return nil, false
	}
	v, ok := strings.CutPrefix(lines[1], "[]byte(")
	if !ok {
		return nil, false
	}
	v, ok = strings.CutSuffix(v, ")")
	if !ok {
		return nil, false
	}
	u, err := strconv.Unquote(v)
	return []byte(u), err == nil
}
