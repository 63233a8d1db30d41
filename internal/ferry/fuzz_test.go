package ferry

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// The decoders of bus messages get arbitrary bytes: none may panic, every
// refusal is ErrInvalid, and what one accepts keeps the promises its
// readers rely on and survives an encode-decode round trip unchanged.

func FuzzRestoreJob(f *testing.F) {
	f.Add(mustMarshal(f, RestoreJob{ID: "job-1", Snapshot: ImageSpec{Pool: "volumes", Image: "vm", Snap: "ferry-1"},
		Target: ImageSpec{Pool: "volumes", Image: "vm-restored"}, Size: 1 << 30, FromSnap: "ferry-0", FromSnapSize: 1 << 30,
		BackupFSID: "fsid", FeedSeq: 7, FeedAttempt: "a1", Created: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}))
	f.Fuzz(func(t *testing.T, raw []byte) {
		j, err := DecodeRestoreJob(raw)
		if err != nil {
			requireInvalid(t, err)
			return
		}
		if j.ID == "" || !named(j.Snapshot) || j.Snapshot.Snap == "" || !named(j.Target) || j.Target.Snap != "" || j.FeedSeq == 0 || j.FeedAttempt == "" {
			t.Fatalf("accepted an incomplete job %+v", j)
		}
		roundTrip(t, j, DecodeRestoreJob)
	})
}

// FuzzManifest decodes manifests as the consumer does (json.Unmarshal).
func FuzzManifest(f *testing.F) {
	f.Add(mustMarshal(f, Manifest{BackupID: "id/volumes/vm@ferry-2", Image: ImageSpec{Pool: "volumes", Image: "vm", Snap: "ferry-2"},
		SourceImageID: "id", FromSnap: "ferry-1", ToSnap: "ferry-2", Size: 1 << 30, ChunkSize: 4 << 20,
		Complete: &BackupEnd{ExtentPages: []string{"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}, ExtentCount: 3}}))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var m Manifest
		if json.Unmarshal(raw, &m) != nil {
			return
		}
		roundTrip(t, m, func(raw []byte) (Manifest, error) {
			var m Manifest
			return m, json.Unmarshal(raw, &m)
		})
	})
}

func TestIsChunkHash(t *testing.T) {
	good := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if !IsChunkHash(good) {
		t.Errorf("%q refused", good)
	}
	for _, bad := range []string{"", ">", "*", good[:63], good + "0", "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", good[:60] + ".>ab"} {
		if IsChunkHash(bad) {
			t.Errorf("%q taken for a chunk address", bad)
		}
	}
}

// roundTrip requires that v, encoded and decoded again, encodes the same.
func roundTrip[T any](t *testing.T, v T, decode func([]byte) (T, error)) {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		return // a time json cannot write (year past 9999): never sent
	}
	back, err := decode(raw)
	if err != nil {
		t.Fatalf("%s, accepted once, is refused after a round trip: %v", raw, err)
	}
	again, err := json.Marshal(back)
	if err != nil || !bytes.Equal(again, raw) {
		t.Fatalf("round trip changed %s into %s (%v)", raw, again, err)
	}
}

func requireInvalid(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("error %v is not ErrInvalid", err)
	}
}

func mustMarshal(f *testing.F, v any) []byte {
	raw, err := json.Marshal(v)
	if err != nil {
		f.Fatal(err)
	}
	return raw
}
