package testbed_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dr/ferry/internal/testbed"
)

func TestMain(m *testing.M) { testbed.Main(m) }

func TestSitesAreUp(t *testing.T) {
	bed := testbed.Shared(t)
	for _, s := range []*testbed.Site{bed.Source, bed.Backup} {
		out := s.Rbd(t, "pool", "stats", s.Pool)
		if !strings.Contains(out, "Total Images") {
			t.Errorf("%s: rbd pool stats %s: unexpected output %q", s.Name, s.Pool, out)
		}
		if s.ID != "admin" || s.Pool != "ferry" {
			t.Errorf("%s: ID %q Pool %q, want admin and ferry", s.Name, s.ID, s.Pool)
		}
	}
}

func TestSitesAreIndependent(t *testing.T) {
	bed := testbed.Shared(t)
	src, dst := bed.Source.Fsid(t), bed.Backup.Fsid(t)
	if src == "" || src == dst {
		t.Fatalf("fsid source %q backup %q: want two different clusters", src, dst)
	}
	if bed.Source.Conf == bed.Backup.Conf {
		t.Fatalf("both sites use %s", bed.Source.Conf)
	}

	img := testbed.ImageName(t, "")
	bed.Source.CreateImage(t, img, 4<<20)
	if ls := bed.Source.Rbd(t, "ls", bed.Source.Pool); !hasLine(ls, img) {
		t.Fatalf("source: %s not listed after create: %q", img, ls)
	}
	if ls := bed.Backup.Rbd(t, "ls", bed.Backup.Pool); hasLine(ls, img) {
		t.Fatalf("backup lists %s, which was created on the source", img)
	}
	if _, err := bed.Backup.RbdErr("info", bed.Backup.Spec(img)); err == nil {
		t.Fatalf("backup: rbd info %s succeeded; want an error", img)
	}
}

func TestWriteExportRoundTrip(t *testing.T) {
	s := testbed.Shared(t).Source
	const size = 12 << 20
	img := testbed.ImageName(t, "rt")
	s.CreateImage(t, img, size, "--object-size", "4M")

	// Random data across an object boundary, at an unaligned offset.
	data := make([]byte, 5<<20+123)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	const off = 3<<20 + 77
	if n := s.WriteImage(t, img, off, bytes.NewReader(data)); n != int64(len(data)) {
		t.Fatalf("WriteImage wrote %d bytes, want %d", n, len(data))
	}
	want := make([]byte, size)
	copy(want[off:], data)

	got := s.ExportImage(t, img)
	if !bytes.Equal(got, want) {
		t.Fatalf("exported %d bytes that differ from what was written (want %d bytes)", len(got), len(want))
	}
	sum := sha256.Sum256(want)
	if h := s.SHA256(t, img); h != hex.EncodeToString(sum[:]) {
		t.Fatalf("SHA256 = %s, want %s", h, hex.EncodeToString(sum[:]))
	}

	// A snapshot keeps the old content after the head changes.
	s.Rbd(t, "snap", "create", s.Spec(img)+"@s1")
	s.WriteImage(t, img, 0, bytes.NewReader([]byte("changed")))
	if h := s.SHA256(t, img+"@s1"); h != hex.EncodeToString(sum[:]) {
		t.Fatalf("snapshot content changed after a write to the head")
	}
	if head := s.ExportImage(t, img); string(head[:7]) != "changed" {
		t.Fatalf("head starts with %q, want %q", head[:7], "changed")
	}
}

func TestCephxIsEnforced(t *testing.T) {
	s := testbed.Shared(t).Source
	if _, err := s.RbdErr("ls", s.Pool); err != nil {
		t.Fatalf("the right keyring must work: %v", err)
	}

	// The same client id with another key: authentication must fail.
	bad := *s
	bad.Keyring = filepath.Join(t.TempDir(), "wrong.keyring")
	wrong := "[client.admin]\n\tkey = AQBsDgtmAAAAABAAkkW4mYcVRbRbVZBR+ZaV4A==\n"
	if err := os.WriteFile(bad.Keyring, []byte(wrong), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := bad.RbdErr("ls", bad.Pool, "--client-mount-timeout", "5")
	if err == nil {
		t.Fatalf("rbd ls with a wrong key succeeded (%q): cephx is not enforced", out)
	}
	t.Logf("wrong key rejected as expected: %v", err)

	// A client without any key must fail too (auth none is not allowed).
	none := *s
	none.Keyring = filepath.Join(t.TempDir(), "empty.keyring")
	if err := os.WriteFile(none.Keyring, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := none.RbdErr("ls", none.Pool, "--client-mount-timeout", "5"); err == nil {
		t.Fatalf("rbd ls without a key succeeded: cephx is not enforced")
	}
}

func TestImageName(t *testing.T) {
	t.Run("sub/test@x", func(t *testing.T) {
		a, b := testbed.ImageName(t, "p"), testbed.ImageName(t, "p")
		if a == b {
			t.Fatalf("two calls returned the same name %q", a)
		}
		if strings.ContainsAny(a, "/@ ") || !strings.HasPrefix(a, "p-TestImageName_sub_test_x-") {
			t.Fatalf("ImageName = %q", a)
		}
	})
}

func hasLine(out, line string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}
