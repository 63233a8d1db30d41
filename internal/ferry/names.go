package ferry

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen bounds pool, image and snapshot names, in bytes. Ceph's own
// limits are higher (librbd 16.2 takes image names up to 2041 bytes, the
// length of an object name less "rbd_id."), but every name also travels
// escaped (up to three bytes per byte) in subjects, state keys and scrub
// record names, which must stay inside NATS's 4 KiB protocol lines.
// OpenStack's names are far shorter (Nova's "<uuid>_disk.config" has 48).
const MaxNameLen = 255

// ErrRefused marks input that is refused for good: retrying cannot help.
var ErrRefused = errors.New("refused")

// Refuse marks err as a refusal ("refused: <err>").
func Refuse(err error) error { return fmt.Errorf("%w: %w", ErrRefused, err) }

// NameError says why a pool, image or snapshot name is not one Ferry takes.
type NameError struct {
	Kind string // pool, image or snapshot
	Name string
	Why  string
}

func (e *NameError) Error() string {
	name := e.Name
	if len(name) > 64 {
		name = name[:64] + "..."
	}
	return fmt.Sprintf("%s name %s: %s", e.Kind, strconv.Quote(name), e.Why)
}

// Validate checks that the names of s are ones Ferry can carry to the
// backup site and back: pool and image non-empty, without '/' or '@' (they
// separate the parts of a spec), printable UTF-8 (no NUL, no control or
// escape characters), at most MaxNameLen bytes; the snapshot, when set,
// likewise but it may hold '/' and '@' (only the first '@' of a spec
// separates it). Spaces, '.', '*', '>' and other printable characters are
// fine: they are escaped wherever a name becomes part of a subject or key.
func (s ImageSpec) Validate() error {
	if err := checkName("pool", s.Pool, "/@"); err != nil {
		return err
	}
	if err := checkName("image", s.Image, "/@"); err != nil {
		return err
	}
	if s.Snap != "" {
		return ValidateSnapName(s.Snap)
	}
	return nil
}

// ValidateSnapName checks a snapshot name as Validate does.
func ValidateSnapName(name string) error { return checkName("snapshot", name, "") }

func checkName(kind, name, forbidden string) error {
	bad := func(why string, args ...any) error {
		return &NameError{Kind: kind, Name: name, Why: fmt.Sprintf(why, args...)}
	}
	switch {
	case name == "":
		return bad("empty")
	case len(name) > MaxNameLen:
		return bad("%d bytes long; Ferry takes names of at most %d bytes", len(name), MaxNameLen)
	case !utf8.ValidString(name):
		return bad("not valid UTF-8; Ferry takes names of printable UTF-8 text")
	}
	if i := strings.IndexAny(name, forbidden); i >= 0 {
		return bad("contains %q, which separates the parts of POOL/IMAGE@SNAP; rename it (rbd mv, rbd snap rename)", name[i])
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return bad("contains the non-printable character %U (a control, escape or invisible character); rename it (rbd mv, rbd snap rename)", r)
		}
	}
	return nil
}

// Printable returns s with every character that is not printable (controls
// such as ESC and newline, invisible characters, invalid UTF-8) written as a
// Go escape (\x1b, \n, \u202e): text from a message or the state, printed
// as it is, could move the cursor, rewrite lines or change a terminal's
// title.
func Printable(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsPrint(r):
			b.WriteString(s[i : i+size])
		default:
			q := strconv.QuoteRune(r) // '\x1b', '\n', '\u202e'
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}

// ValidateNames checks every name m carries, and that its image's snapshot
// is its to-snapshot (the consumer applies one and snapshots the other).
func (m *Manifest) ValidateNames() error {
	if m.Image.Snap != m.ToSnap {
		return fmt.Errorf("the manifest's image %s and its to-snapshot %s differ", strconv.Quote(m.Image.String()), strconv.Quote(m.ToSnap))
	}
	if m.ToSnap == "" {
		return errors.New("the manifest names no to-snapshot")
	}
	if err := m.Image.Validate(); err != nil {
		return err
	}
	if m.FromSnap != "" {
		return ValidateSnapName(m.FromSnap)
	}
	return nil
}

// MaxImageSize is the largest image Ferry backs up or restores: librbd's
// object map holds at most 256 Mi objects, 1 PiB of 4 MiB objects. A size
// above it in a message is refused before anything is created.
const MaxImageSize = 1 << 50

// Validate checks what a manifest promises before anything acts on it: its
// names (ValidateNames) and an image size Ferry can create.
func (m *Manifest) Validate() error {
	if err := m.ValidateNames(); err != nil {
		return err
	}
	return checkImageSize("the manifest's image", m.Size)
}

// Validate checks a restore job's names (ValidateNames) and sizes.
func (j *RestoreJob) Validate() error {
	if err := j.ValidateNames(); err != nil {
		return err
	}
	return errors.Join(checkImageSize("the restore job's image", j.Size), checkImageSize("the restore job's base", j.FromSnapSize))
}

func checkImageSize(what string, size uint64) error {
	if size > MaxImageSize {
		return fmt.Errorf("%s size %d is above %d, the largest image Ferry creates (librbd's object map holds 256 Mi objects)", what, size, uint64(MaxImageSize))
	}
	return nil
}

// ValidateNames checks every name j carries: the backup snapshot, the
// target image and the from-snapshot.
func (j *RestoreJob) ValidateNames() error {
	if j.Snapshot.Snap == "" {
		return errors.New("the restore job names no backup snapshot")
	}
	err := errors.Join(j.Snapshot.Validate(), j.Target.Validate())
	if err == nil && j.FromSnap != "" {
		err = ValidateSnapName(j.FromSnap)
	}
	return err
}
