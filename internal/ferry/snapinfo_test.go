package ferry

import (
	"testing"
	"time"
)

// TestSnapInfosKeepOnlyExistingSnapshots: the record holds only the
// snapshots the image still has, and a damaged one reads as empty.
func TestSnapInfosKeepOnlyExistingSnapshots(t *testing.T) {
	n := uint64(42)
	m := SnapInfos{"ferry-a": {Consistency: Quiesced, ChangedBytes: &n, Full: true}, "ferry-b": {Consistency: CrashConsistent}}
	got := DecodeSnapInfos(m.Encode([]string{"ferry-b", "ferry-c"}))
	if len(got) != 1 || got["ferry-b"].Consistency != CrashConsistent || got["ferry-b"].ChangedBytes != nil {
		t.Fatalf("kept %+v, want ferry-b only", got)
	}
	got = DecodeSnapInfos(m.Encode([]string{"ferry-a"}))
	if a := got["ferry-a"]; a.Consistency != Quiesced || !a.Full || a.ChangedBytes == nil || *a.ChangedBytes != 42 {
		t.Fatalf("ferry-a read back as %+v", a)
	}
	if got := DecodeSnapInfos(`{"ferry-a":`); len(got) != 0 {
		t.Fatalf("a damaged record read as %+v", got)
	}
}

func TestSnapshotTime(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	if got, ok := SnapshotTime(NewSnapshotName(at)); !ok || !got.Equal(at) {
		t.Fatalf("SnapshotTime(NewSnapshotName(%v)) = %v, %v", at, got, ok)
	}
	for _, name := range []string{"by-hand", "ferry-yesterday"} {
		if _, ok := SnapshotTime(name); ok {
			t.Errorf("%s read as a time", name)
		}
	}
}
