package chunk

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"github.com/ferry-dr/ferry/internal/rbddiff"
	"github.com/ferry-dr/ferry/internal/testutil"
	"github.com/nats-io/nats.go/jetstream"
)

func testKey(t testing.TB, seed byte) *Keyed {
	t.Helper()
	k, err := NewKeyed(bytes.Repeat([]byte{seed}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestSealRoundTrip: a sealed body opens under its address; the address is
// stable, differs from the plain SHA-256, and differs between keys.
func TestSealRoundTrip(t *testing.T) {
	k := testKey(t, 1)
	raw := []byte("some chunk bytes")
	addr := k.Address(raw)
	if addr != k.Address(raw) || addr == Hash(raw) || addr == testKey(t, 2).Address(raw) || len(addr) != len(Hash(raw)) {
		t.Fatalf("keyed address %s (plain %s): want stable, 64 hex digits, not the SHA-256, not another key's", addr, Hash(raw))
	}
	body := []byte("compressed body")
	stored := k.Seal(nil, addr, body)
	if bytes.Contains(stored, body) || len(stored) != len(body)+sealOverhead {
		t.Fatalf("sealed %q: holds the body in the clear, or %d bytes of overhead", stored, len(stored)-len(body))
	}
	if again := k.Seal(nil, addr, body); bytes.Equal(again, stored) {
		t.Fatal("two seals of one body are equal: the nonce is not fresh")
	}
	got, err := k.Open(addr, stored)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("open: %q, %v", got, err)
	}
}

// TestSealRefusesTampering: any changed byte, and a body moved under
// another address, is corrupt (sent again), not a key mismatch.
func TestSealRefusesTampering(t *testing.T) {
	k := testKey(t, 1)
	a, b := k.Address([]byte("a")), k.Address([]byte("b"))
	sealedA := k.Seal(nil, a, []byte("body of a"))
	for i := range sealedA {
		if i >= 1 && i < 1+keyIDSize {
			continue // the key id: a key mismatch, below
		}
		bad := bytes.Clone(sealedA)
		bad[i] ^= 0x40
		if _, err := k.Open(a, bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d flipped: %v, want ErrCorrupt", i, err)
		}
	}
	if _, err := k.Open(b, bytes.Clone(sealedA)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a's body under b's address: %v, want ErrCorrupt", err)
	}
	if _, err := k.Open(a, sealedA[:sealOverhead-1]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated: %v, want ErrCorrupt", err)
	}
}

// TestSealKeyMismatch: another key, a plain chunk read with a key and a
// sealed chunk read without one are ErrKey, and say what to do.
func TestSealKeyMismatch(t *testing.T) {
	k1, k2 := testKey(t, 1), testKey(t, 2)
	addr := k1.Address([]byte("x"))
	sealed := k1.Seal(nil, addr, []byte("body"))
	plainBody := []byte{gzipMagic, 0x8b, 8, 0}
	for name, tc := range map[string]struct {
		s      Sealer
		stored []byte
		want   string
	}{
		"other key":   {k2, sealed, "both sites must use the same key file"},
		"plain chunk": {k1, plainBody, "stored without a chunk key"},
		"no key":      {Plain, sealed, "no chunk key is configured"},
	} {
		_, err := tc.s.Open(addr, bytes.Clone(tc.stored))
		if !errors.Is(err, ErrKey) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrKey saying %q", name, err, tc.want)
		}
	}
	if got, err := Plain.Open("x", plainBody); err != nil || !bytes.Equal(got, plainBody) {
		t.Errorf("plain: %v", err)
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	gen := filepath.Join(dir, "gen.key")
	k, err := GenerateKey(gen)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateKey(gen); err == nil {
		t.Fatal("GenerateKey replaced an existing key file")
	}
	loaded, err := LoadKey(gen)
	if err != nil || loaded.KeyID() != k.KeyID() {
		t.Fatalf("load generated key: %v", err)
	}
	raw := filepath.Join(dir, "raw.key")
	if err := os.WriteFile(raw, bytes.Repeat([]byte{1}, KeySize), 0o600); err != nil {
		t.Fatal(err)
	}
	if k, err := LoadKey(raw); err != nil || k.KeyID() != testKey(t, 1).KeyID() {
		t.Fatalf("raw key: %v", err)
	}
	for name, tc := range map[string]struct {
		data string
		mode os.FileMode
		want string
	}{
		"short":      {"abcd\n", 0o600, "want 32 random bytes"},
		"not hex":    {strings.Repeat("zz", KeySize), 0o600, "not hex"},
		"world-read": {strings.Repeat("ab", KeySize), 0o644, "readable by others"},
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(tc.data), tc.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, tc.mode); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadKey(p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

// TestSealedStore: a diff stored with a key reads back; the stream holds
// no plaintext and no subject names a plain SHA-256 of any chunk; storing
// it again sends nothing (dedup); a reader with another key or none is
// refused with ErrKey before any record.
func TestSealedStore(t *testing.T) {
	c := bustest.Conn(t)
	ctx := context.Background()
	store, err := Open(ctx, c.Backup)
	if err != nil {
		t.Fatal(err)
	}
	store.SetSealer(testKey(t, 1))
	const chunkSize = 64 << 10
	marker := []byte("FERRY-PLAINTEXT-MARKER-")
	var recs []record
	var plainHashes []string
	r := rand.New(rand.NewPCG(7, 8))
	for i := range 8 {
		// Incompressible, so stored as is without a key; with the marker
		// in it, to find.
		p := testutil.RandomBytes(r, chunkSize)
		copy(p[chunkSize/2:], marker)
		recs = append(recs, record{off: uint64(i) * chunkSize, n: chunkSize, payload: p})
		plainHashes = append(plainHashes, Hash(p))
	}
	header := rbddiff.Header{ToSnap: "snap", Size: 8 * chunkSize}
	stats := writeDiff(t, NewDiffWriter(ctx, store, WriterOptions{ChunkSize: chunkSize}), header, recs)
	readDiff(t, store, header, stats.Pages, recs, 0)
	if stats.ChunksSent != 8 {
		t.Fatalf("first write sent %d chunks, want 8", stats.ChunksSent)
	}
	again := writeDiff(t, NewDiffWriter(ctx, store, WriterOptions{ChunkSize: chunkSize}), header, recs)
	if again.ChunksSent != 0 || again.PageBytesSent != 0 {
		t.Fatalf("second write of the same data sent %d chunks, %d page bytes; want none (dedup)", again.ChunksSent, again.PageBytesSent)
	}

	stream, err := c.Backup.Stream(ctx, bus.ChunkStream)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range info.State.Msgs {
		m, err := cons.Next()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(m.Data(), marker) {
			t.Fatalf("message %s holds plaintext", m.Subject())
		}
		for _, h := range plainHashes {
			if strings.Contains(m.Subject(), h) {
				t.Fatalf("subject %s names the plain SHA-256 of a chunk", m.Subject())
			}
		}
	}

	for name, sl := range map[string]Sealer{"other key": testKey(t, 2), "no key": Plain} {
		other, err := Open(ctx, c.Backup)
		if err != nil {
			t.Fatal(err)
		}
		other.SetSealer(sl)
		list := PageList(stats.Pages)
		src := NewDiffReader(ctx, other, header, &list)
		_, err = src.Next()
		src.Close()
		var ce *Error
		if !errors.Is(err, ErrKey) || !errors.As(err, &ce) || ce.Hash != stats.Pages[0] {
			t.Errorf("%s: first record: %v; want ErrKey naming page %s", name, err, stats.Pages[0])
		}
	}
}

// BenchmarkSeal is the cost of a chunk key per 4 MiB chunk, per core:
// address and seal (publisher), open and address (consumer), against the
// plain SHA-256 address alone.
func BenchmarkSeal(b *testing.B) {
	raw := testutil.RandomBytes(rand.New(rand.NewPCG(1, 2)), 4<<20)
	k := testKey(b, 1)
	addr := k.Address(raw)
	stored := k.Seal(nil, addr, raw)
	b.Run("plain-address", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		for b.Loop() {
			Hash(raw)
		}
	})
	b.Run("keyed-address+seal", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		var buf []byte
		for b.Loop() {
			buf = k.Seal(buf[:0], k.Address(raw), raw)
		}
	})
	b.Run("open+keyed-address", func(b *testing.B) {
		b.SetBytes(int64(len(raw)))
		buf := make([]byte, len(stored))
		for b.Loop() {
			copy(buf, stored)
			body, err := k.Open(addr, buf)
			if err != nil {
				b.Fatal(err)
			}
			k.Address(body)
		}
	})
}
