package ceph

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/rbddiff"
)

// damages are the ways a diff file goes wrong, each applied to a good v1
// diff (which ends in the one-byte end record) of an image of size bytes.
var damages = map[string]func(good []byte, size uint64) []byte{
	"truncated after the header": func(good []byte, _ uint64) []byte {
		return good[:headerLen(good)]
	},
	"truncated mid-record": func(good []byte, _ uint64) []byte { return good[:len(good)*2/3] },
	"first record corrupted": func(good []byte, _ uint64) []byte {
		bad := bytes.Clone(good)
		bad[headerLen(good)] = 'X'
		return bad
	},
	"end record corrupted": func(good []byte, _ uint64) []byte {
		bad := bytes.Clone(good)
		bad[len(bad)-1] = 'X'
		return bad
	},
	"extent past the size": func(good []byte, size uint64) []byte {
		bad := append(bytes.Clone(good[:len(good)-1]), 'w')
		bad = binary.LittleEndian.AppendUint64(bad, size)
		bad = binary.LittleEndian.AppendUint64(bad, 4096)
		return append(append(bad, make([]byte, 4096)...), 'e')
	},
	"bytes after the end": func(good []byte, _ uint64) []byte {
		return append(bytes.Clone(good), make([]byte, 1<<20)...)
	},
}

// headerLen is where the first record of a v1 diff starts.
func headerLen(diff []byte) int {
	// The banner, then 'f'/'t' with a le32 length and the name, and 's'.
	n := len("rbd diff v1\n")
	for {
		switch diff[n] {
		case 'f', 't':
			n += 5 + int(binary.LittleEndian.Uint32(diff[n+1:]))
		case 's':
			n += 9
		default:
			return n
		}
	}
}

// undoDiff is a diff of data and zeros over three objects of a 3*obj+123
// byte image: larger than the 2*obj targets, so a failed import that is
// not undone leaves them grown.
func undoDiff(t *testing.T, r *rand.Rand, from string) (size uint64, diff []byte) {
	size = 3*obj + 123
	ops := []diffOp{
		{off: 4096, len: 64 << 10, data: randomBytes(r, 64<<10)},
		{off: obj, len: obj},
		{off: 2*obj + 5, len: 1 << 20, data: randomBytes(r, 1<<20)},
		{off: 3 * obj, len: 123, data: randomBytes(r, 123)},
	}
	return size, writeDiff(t, rbddiff.Header{FromSnap: from, ToSnap: "to", Size: size}, ops)
}

// importOrUndoBytes imports diff with ImportOrUndo. An import that fails
// must still give back every I/O buffer (C memory): one that did not leaked
// a buffer with each bad diff.
func importOrUndoBytes(t *testing.T, target ferry.ImageSpec, diff []byte) error {
	t.Helper()
	_, backup := bedSites(t)
	_, err := backup.ImportOrUndo(context.Background(), target, rbddiff.NewReader(bytes.NewReader(diff)), nil)
	if err != nil && strings.Contains(err.Error(), "not given back") {
		t.Errorf("the failed import kept I/O buffers: %v", err)
	}
	return err
}

// An image with data on it, 2*obj bytes, to import into.
func imageWithData(t *testing.T, r *rand.Rand, prefix string) ferry.ImageSpec {
	_, backup := bedSites(t)
	img := newImage(t, backup, prefix, 2*obj)
	writeAt(t, backup, img, 0, randomBytes(r, 8192))
	writeAt(t, backup, img, obj+777, randomBytes(r, 300<<10))
	return img
}

// TestImportOrUndoCreatedImage: a full diff into an image that does not
// exist creates it; a failed one removes it again.
func TestImportOrUndoCreatedImage(t *testing.T) {
	_, backup := bedSites(t)
	r := rand.New(rand.NewPCG(1, 2))
	size, good := undoDiff(t, r, "")
	for name, damage := range damages {
		t.Run(name, func(t *testing.T) {
			img := newImage(t, backup, "undo-new", 1)
			if err := backup.RemoveImage(img); err != nil {
				t.Fatal(err)
			}
			err := importOrUndoBytes(t, img, damage(good, size))
			if err == nil {
				t.Fatal("the damaged diff was imported")
			}
			t.Log(err)
			if _, err := backup.Info(img); !errors.Is(err, ErrNotFound) {
				t.Errorf("after the failed import, %s: %v; want it gone", img, err)
			}
		})
	}
	img := newImage(t, backup, "undo-new-good", 1)
	if err := backup.RemoveImage(img); err != nil {
		t.Fatal(err)
	}
	if err := importOrUndoBytes(t, img, good); err != nil {
		t.Fatalf("a good full diff into a new image: %v", err)
	}
	if got := content(t, backup, img.AtSnap("to")); got.Size != size {
		t.Errorf("the created image is %d bytes, want %d", got.Size, size)
	}
}

// TestImportOrUndoRollsBack: a failed incremental into an image whose head
// is its from-snapshot, or a failed full diff into an image whose head is
// its newest snapshot, leaves it as it was: same size, same bytes, no
// to-snapshot.
func TestImportOrUndoRollsBack(t *testing.T) {
	_, backup := bedSites(t)
	r := rand.New(rand.NewPCG(3, 4))
	for _, from := range []string{"base", ""} {
		size, good := undoDiff(t, r, from)
		for name, damage := range damages {
			t.Run(name+" from "+from, func(t *testing.T) {
				img := imageWithData(t, r, "undo-rollback")
				snap(t, backup, img, "base")
				before := content(t, backup, img)
				err := importOrUndoBytes(t, img, damage(good, size))
				if err == nil {
					t.Fatal("the damaged diff was imported")
				}
				t.Log(err)
				if after := content(t, backup, img); after != before {
					t.Errorf("the failed import changed the image: %d bytes, sha256 %x before; %d bytes, sha256 %x after",
						before.Size, before.SHA256[:8], after.Size, after.SHA256[:8])
				}
				if names := snapshotNames(t, backup, img); len(names) != 1 {
					t.Errorf("snapshots after the failed import: %v, want only base", names)
				}
			})
		}
	}
}

// TestImportOrUndoReportsChanges: where the target cannot be put back (an
// image with data and no snapshot, or a head written since the
// from-snapshot), a diff that fails before its first extent still changes
// nothing, and any other failure says what it changed: the new size and
// the range written.
func TestImportOrUndoReportsChanges(t *testing.T) {
	_, backup := bedSites(t)
	r := rand.New(rand.NewPCG(5, 6))
	for _, from := range []string{"", "base"} {
		size, good := undoDiff(t, r, from)
		for name, damage := range damages {
			t.Run(name+" from "+from, func(t *testing.T) {
				img := imageWithData(t, r, "undo-report")
				if from != "" {
					snap(t, backup, img, from)
					writeAt(t, backup, img, 3*obj/2, []byte("written after the snapshot"))
				}
				before := content(t, backup, img)
				err := importOrUndoBytes(t, img, damage(good, size))
				if err == nil {
					t.Fatal("the damaged diff was imported")
				}
				t.Log(err)
				after := content(t, backup, img)
				if name == "truncated after the header" || name == "first record corrupted" {
					if after != before || !strings.Contains(err.Error(), "the image was not changed") {
						t.Errorf("a diff that failed before its first extent changed the image, or does not say it did not: %s", err)
					}
					return
				}
				if strings.Contains(err.Error(), "the image was not changed") {
					if after != before {
						t.Errorf("the error says the image was not changed, but it was: %s", err)
					}
					return
				}
				if !strings.Contains(err.Error(), "cannot be put back") || !strings.Contains(err.Error(), "resized from 8388608 to 12583035 bytes") ||
					!strings.Contains(err.Error(), "written between bytes 4096 and") {
					t.Errorf("the error does not say what the import changed: %s", err)
				}
			})
		}
	}
}

// TestImportOrUndoBaseMissing: an incremental whose from-snapshot the
// target lacks, or whose target does not exist, is refused before anything
// changes, and creates no image.
func TestImportOrUndoBaseMissing(t *testing.T) {
	_, backup := bedSites(t)
	r := rand.New(rand.NewPCG(7, 8))
	_, diff := undoDiff(t, r, "base")
	img := imageWithData(t, r, "undo-nobase")
	before := content(t, backup, img)
	err := importOrUndoBytes(t, img, diff)
	if !errors.Is(err, ErrBaseMissing) || !strings.Contains(err.Error(), "the image was not changed") {
		t.Errorf("import without the base = %v, want %v and that the image was not changed", err, ErrBaseMissing)
	}
	if after := content(t, backup, img); after != before {
		t.Error("the refused import changed the image")
	}
	missing := newImage(t, backup, "undo-nobase-missing", 1)
	if err := backup.RemoveImage(missing); err != nil {
		t.Fatal(err)
	}
	if err := importOrUndoBytes(t, missing, diff); !errors.Is(err, ErrBaseMissing) {
		t.Errorf("import into a missing image = %v, want %v", err, ErrBaseMissing)
	}
	if _, err := backup.Info(missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("after the refused import, %s: %v; want it not created", missing, err)
	}
}
