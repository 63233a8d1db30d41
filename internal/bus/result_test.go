package bus

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ferry-dr/ferry/internal/ferry"
)

// TestDecodeResult: a result's kind comes from its body and must agree with
// its subject; results of an older Ferry, without a kind, take it from the
// subject.
func TestDecodeResult(t *testing.T) {
	img := ferry.ImageSpec{Pool: "rbd", Image: "vm", Snap: "ferry-1"}
	confirmed, failed := Subject(ConfirmedSubject, img.AtSnap("")), Subject(FailedSubject, img.AtSnap(""))
	imgJSON := `"image":{"Pool":"rbd","Image":"vm","Snap":"ferry-1"}`
	chunkC := strings.Repeat("c", 64)
	for _, tc := range []struct {
		name, subject, body string
		want                ferry.ResultKind
		err                 string
	}{
		{"confirmed", confirmed, `{"kind":"confirmed","backup_id":"b",` + imgJSON + `}`, ferry.ResultConfirmed, ""},
		{"given up", failed, `{"kind":"given_up","backup_id":"b",` + imgJSON + `,"error":"no"}`, ferry.ResultGivenUp, ""},
		{"chunks missing", failed, `{"kind":"chunks_missing","backup_id":"b",` + imgJSON + `,"missing_chunks":["` + chunkC + `"]}`, ferry.ResultChunksMissing, ""},
		// A failure's empty error does not make it a confirmation.
		{"given up without error", failed, `{"kind":"given_up","backup_id":"b",` + imgJSON + `}`, ferry.ResultGivenUp, ""},
		{"old confirmation", confirmed, `{"backup_id":"b",` + imgJSON + `}`, ferry.ResultConfirmed, ""},
		{"old failure", failed, `{"backup_id":"b",` + imgJSON + `,"error":"no"}`, ferry.ResultGivenUp, ""},
		{"old failure without error", failed, `{"backup_id":"b",` + imgJSON + `}`, ferry.ResultGivenUp, ""},
		{"old missing chunks", failed, `{"backup_id":"b",` + imgJSON + `,"error":"bad","missing_chunks":["` + chunkC + `"]}`, ferry.ResultChunksMissing, ""},
		{"confirmation on the failure subject", failed, `{"kind":"confirmed","backup_id":"b",` + imgJSON + `}`, "", "goes on ferry.confirmed"},
		{"failure on the confirmation subject", confirmed, `{"kind":"given_up","backup_id":"b",` + imgJSON + `}`, "", "goes on ferry.failed"},
		{"unknown kind", failed, `{"kind":"maybe","backup_id":"b",` + imgJSON + `}`, "", "unknown backup result kind"},
		{"old message on another subject", Subject(RestoredSubject, img), `{"backup_id":"b",` + imgJSON + `}`, "", "unknown backup result kind"},
		{"not json", confirmed, `{`, "", "does not parse"},
		{"no image", confirmed, `{"kind":"confirmed","backup_id":"b"}`, "", `pool name "": empty`},
		{"another image's", confirmed, `{"kind":"confirmed","backup_id":"b","image":{"Pool":"rbd","Image":"other","Snap":"ferry-1"}}`, "", "does not name the image"},
		{"missing chunk not an address", failed, `{"kind":"chunks_missing","backup_id":"b",` + imgJSON + `,"missing_chunks":[">"]}`, "", "not a chunk address"},
	} {
		r, err := DecodeResult(tc.subject, nil, []byte(tc.body), nil)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: err %v, want one saying %q", tc.name, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.err == "" && r.Kind != tc.want:
			t.Errorf("%s: kind %q, want %q", tc.name, r.Kind, tc.want)
		}
	}
}

// TestResultSubjects: each kind goes out on the subject DecodeResult
// accepts it from, and comes back whole.
func TestResultSubjects(t *testing.T) {
	img := ferry.ImageSpec{Pool: "rbd", Image: "vm", Snap: "ferry-1"}
	for _, k := range []ferry.ResultKind{ferry.ResultConfirmed, ferry.ResultGivenUp, ferry.ResultChunksMissing} {
		prefix, err := resultPrefix(k)
		if err != nil {
			t.Fatal(err)
		}
		in := ferry.BackupResult{Kind: k, BackupID: "b", Image: img, Manifest: &ferry.Manifest{BackupID: "b", VolumeID: "v"}}
		raw, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		out, err := DecodeResult(Subject(prefix, img.AtSnap("")), nil, raw, nil)
		if err != nil || out.Kind != k || out.Manifest == nil || out.Manifest.VolumeID != "v" {
			t.Errorf("%s: got %+v, %v", k, out, err)
		}
	}
	if _, err := resultPrefix(""); err == nil {
		t.Error("a result without a kind has a subject")
	}
}
