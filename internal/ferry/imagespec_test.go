package ferry

import "testing"

func TestParseImageSpec(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ImageSpec
		bad  bool
	}{
		{in: "pool/img", want: ImageSpec{Pool: "pool", Image: "img"}},
		{in: "pool/img@snap 1", want: ImageSpec{Pool: "pool", Image: "img", Snap: "snap 1"}},
		{in: "img@快照", want: ImageSpec{Pool: "rbd", Image: "img", Snap: "快照"}},
		{in: "pool/img@a@b", want: ImageSpec{Pool: "pool", Image: "img", Snap: "a@b"}},
		{in: "pool/img@", bad: true},
		{in: "/img", bad: true},
		{in: "pool/", bad: true},
		{in: "a/b/c", bad: true},
	} {
		got, err := ParseImageSpec(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseImageSpec(%q) = %+v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseImageSpec(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if back, _ := ParseImageSpec(got.String()); back != got {
			t.Errorf("String() of %+v does not parse back: %q", got, got.String())
		}
	}
}

func TestPoolMap(t *testing.T) {
	m, err := ParsePoolMap("volumes=volumes-dr, vms=dr")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Backup(ImageSpec{Pool: "volumes", Image: "v", Snap: "s"}); got != (ImageSpec{Pool: "volumes-dr", Image: "v", Snap: "s"}) {
		t.Errorf("mapped: %+v", got)
	}
	if got := m.Backup(ImageSpec{Pool: "other", Image: "v"}); got.Pool != "other" {
		t.Errorf("unmapped pool changed: %+v", got)
	}
	for _, bad := range []string{"a", "a=", "=b", "a=b,a=c", "a=b/c"} {
		if _, err := ParsePoolMap(bad); err == nil {
			t.Errorf("ParsePoolMap(%q) accepted", bad)
		}
	}
	if m, err := ParsePoolMap(""); err != nil || len(m) != 0 {
		t.Errorf("empty map: %v %v", m, err)
	}
}
