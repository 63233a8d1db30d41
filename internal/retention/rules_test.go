package retention

import (
	"strings"
	"testing"

	"github.com/ferry-dr/ferry/internal/ferry"
)

func TestRulesChooseImageThenPoolThenDefault(t *testing.T) {
	gold, db, dbFirst, def := Policy{Latest: 24}, Policy{Days: 30}, Policy{Hours: 48}, Policy{Latest: 3}
	rules := Rules{
		Default: def,
		Pools:   map[string]Policy{"volumes": gold},
		Images: []ImageRule{
			{Pattern: "volumes/db-1", Policy: dbFirst}, // the first match wins
			{Pattern: "volumes/db-*", Policy: db},
			{Pattern: "*/scratch-?", Policy: Policy{Latest: 1}},
		},
	}
	for _, c := range []struct {
		image string
		want  Policy
		rule  string
	}{
		{"volumes/db-1", dbFirst, "image volumes/db-1"},
		{"volumes/db-2", db, "image volumes/db-*"},
		{"volumes/web", gold, "pool volumes"},
		{"images/scratch-a", Policy{Latest: 1}, "image */scratch-?"},
		{"images/scratch-ab", def, "default"},
		{"other/db-2", def, "default"},
	} {
		spec, err := ferry.ParseImageSpec(c.image)
		if err != nil {
			t.Fatal(err)
		}
		p, rule, ok := rules.For(spec)
		if !ok || p.String() != c.want.String() || rule != c.rule {
			t.Errorf("%s: %s by %q (%v), want %s by %q", c.image, p, rule, ok, c.want, c.rule)
		}
	}
	rules.Default = nil
	if _, _, ok := rules.For(ferry.ImageSpec{Pool: "other", Image: "x"}); ok {
		t.Error("an image no rule names got a policy")
	}
	if (Rules{}).Empty() != true || rules.Empty() {
		t.Error("Empty is wrong")
	}
}

func TestCheckPattern(t *testing.T) {
	for _, good := range []string{"volumes/db-*", "*/vm-[0-9]*", "volumes/volume-1"} {
		if err := CheckPattern(good); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
	for bad, why := range map[string]string{
		"volumes":      "want POOL/IMAGE",
		"volumes/":     "want POOL/IMAGE",
		"a/b/c":        "want POOL/IMAGE",
		"volumes/db-[": "bad wildcard",
		"/db-*":        "want POOL/IMAGE",
	} {
		if err := CheckPattern(bad); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("%q: %v, want %q", bad, err, why)
		}
	}
}
