package ferry

import (
	"errors"
	"strings"
	"testing"
)

// TestValidateNames: each class of bad name is refused with an error that
// quotes the name (escaped) and says what is wrong; the names Ceph and
// OpenStack really use pass.
func TestValidateNames(t *testing.T) {
	good := []ImageSpec{
		{Pool: "vms", Image: "3f1c2b9e-8d7a-4c55-9e61-0a1b2c3d4e5f_disk.local"},
		{Pool: "vms", Image: "3f1c2b9e-8d7a-4c55-9e61-0a1b2c3d4e5f_disk.swap"},
		{Pool: "vms", Image: "3f1c2b9e-8d7a-4c55-9e61-0a1b2c3d4e5f_disk.config"},
		{Pool: "volumes", Image: "volume-0a1b.pre-resync-20260101T000000Z", Snap: "ferry-20260101T000000.000000000Z"},
		{Pool: "p", Image: "a b*c>d..e=f~g", Snap: "a@b/c d"},
		{Pool: "p", Image: "диск-快照", Snap: "снимок"},
		{Pool: "p", Image: strings.Repeat("x", MaxNameLen)},
	}
	for _, s := range good {
		if err := s.Validate(); err != nil {
			t.Errorf("%+v refused: %v", s, err)
		}
	}
	for _, tc := range []struct {
		spec ImageSpec
		want string // in the error
	}{
		{ImageSpec{Pool: "", Image: "a"}, `pool name "": empty`},
		{ImageSpec{Pool: "p", Image: ""}, `image name "": empty`},
		{ImageSpec{Pool: "p/q", Image: "a"}, `pool name "p/q": contains '/'`},
		{ImageSpec{Pool: "p", Image: "a/b"}, `image name "a/b": contains '/'`},
		{ImageSpec{Pool: "p", Image: "../../etc"}, `contains '/'`},
		{ImageSpec{Pool: "p", Image: "a@b"}, `image name "a@b": contains '@'`},
		{ImageSpec{Pool: "p", Image: "a\x00b"}, `image name "a\x00b": contains the non-printable character U+0000`},
		{ImageSpec{Pool: "p", Image: "a\x1b[2Jb"}, `image name "a\x1b[2Jb": contains the non-printable character U+001B`},
		{ImageSpec{Pool: "p", Image: "a\nb"}, `U+000A`},
		{ImageSpec{Pool: "p", Image: "a\tb"}, `U+0009`},
		{ImageSpec{Pool: "p", Image: "a\u009bb"}, `U+009B`}, // 8-bit CSI
		{ImageSpec{Pool: "p", Image: "a\u202eb"}, `U+202E`}, // right-to-left override
		{ImageSpec{Pool: "p", Image: "a\xffb"}, `not valid UTF-8`},
		{ImageSpec{Pool: "p", Image: strings.Repeat("x", MaxNameLen+1)}, `256 bytes long`},
		{ImageSpec{Pool: "p", Image: "a", Snap: "s\x1b"}, `snapshot name "s\x1b"`},
		{ImageSpec{Pool: "p\x07", Image: "a"}, `pool name "p\a"`},
	} {
		err := tc.spec.Validate()
		var ne *NameError
		if !errors.As(err, &ne) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want a NameError containing %s", tc.spec.String(), err, tc.want)
			continue
		}
		if p := Printable(err.Error()); p != err.Error() {
			t.Errorf("the error about %q prints the name raw: %q", tc.spec.String(), err.Error())
		}
	}
}

// TestParseImageSpecValidates: the command line takes the same names as the bus.
func TestParseImageSpecValidates(t *testing.T) {
	for _, bad := range []string{"p/a\x1bb", "p\x00/a", "p/a@s\nx", "p/" + strings.Repeat("x", 300)} {
		if s, err := ParseImageSpec(bad); err == nil {
			t.Errorf("ParseImageSpec(%q) = %+v, want an error", bad, s)
		}
	}
	if _, err := ParsePoolMap("a=b\x1b"); err == nil {
		t.Error("a pool map with an escape character was taken")
	}
}

func TestManifestValidateNames(t *testing.T) {
	m := Manifest{Image: ImageSpec{Pool: "p", Image: "i", Snap: "s2"}, FromSnap: "s1", ToSnap: "s2"}
	if err := m.ValidateNames(); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(*Manifest){
		"to-snapshot differs": func(m *Manifest) { m.ToSnap = "s3" },
		"no to-snapshot":      func(m *Manifest) { m.ToSnap, m.Image.Snap = "", "" },
		"bad from-snapshot":   func(m *Manifest) { m.FromSnap = "s\x1b" },
		"bad image":           func(m *Manifest) { m.Image.Image = "a/b" },
	} {
		bad := m
		change(&bad)
		if err := bad.ValidateNames(); err == nil {
			t.Errorf("%s: taken", name)
		}
	}
}

// TestValidateSizes: a manifest or restore job whose image is larger than
// any image Ferry creates is refused before anything is created (a 15 EiB
// image without an object map was created, and could not be removed).
func TestValidateSizes(t *testing.T) {
	m := Manifest{Image: ImageSpec{Pool: "p", Image: "i", Snap: "s"}, ToSnap: "s", Size: MaxImageSize}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	m.Size = 15 << 60
	if err := m.Validate(); err == nil || !strings.Contains(err.Error(), "largest image Ferry creates") {
		t.Errorf("15 EiB manifest: %v", err)
	}
	j := RestoreJob{Snapshot: ImageSpec{Pool: "p", Image: "i", Snap: "s"}, Target: ImageSpec{Pool: "p", Image: "t"}, Size: MaxImageSize}
	if err := j.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, change := range []func(*RestoreJob){func(j *RestoreJob) { j.Size = MaxImageSize + 1 }, func(j *RestoreJob) { j.FromSnapSize = 1 << 63 }} {
		bad := j
		change(&bad)
		if err := bad.Validate(); err == nil {
			t.Errorf("restore job %+v taken", bad)
		}
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"plain text, ünïcödé 快照":  "plain text, ünïcödé 快照",
		"\x1b[2J\x1b]0;pwned\x07": `\x1b[2J\x1b]0;pwned\a`,
		"line\nbreak\r\ttab":      `line\nbreak\r\ttab`,
		"a\u009bb\u202ec\x00":     `a\u009bb\u202ec\x00`,
		"bad \xff utf-8":          `bad \xff utf-8`,
		`back\slash`:              `back\slash`,
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}
