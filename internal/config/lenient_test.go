package config

import (
	"path/filepath"
	"testing"
)

// TestLoadLenientDropsOnlyBadValues: each value that does not parse or
// validate is left out, with a problem naming it; the value under it stays
// (the file's under a variable, else the default) and everything else
// applies.
func TestLoadLenientDropsOnlyBadValues(t *testing.T) {
	path := writeFile(t, "nats:\n  url: nats://file:4222\npublisher:\n  compression_level: 3\nlog:\n  level: loud\n")
	l, ps := LoadLenient(path, env(map[string]string{
		"FERRY_NATS_CREDS":                  "/env.creds",
		"FERRY_PUBLISHER_COMPRESSION_LEVEL": "42",   // validates not: the file's 3 stays
		"FERRY_PUBLISHER_CHUNK_SIZE":        "lots", // parses not: the default stays
		"FERRY_CONSUMER_SITE":               "dr",
	}))
	checks := []struct{ key, want, origin string }{
		{"nats.url", "nats://file:4222", path + ":2"},
		{"nats.creds", "/env.creds", "$FERRY_NATS_CREDS"},
		{"publisher.compression_level", "3", path + ":4"},
		{"publisher.chunk_size", "4194304", ""},
		{"log.level", "info", ""}, // the file's value validates not
		{"consumer.site", "dr", "$FERRY_CONSUMER_SITE"},
	}
	for _, c := range checks {
		got, ok := l.Value(c.key)
		if !ok || got != c.want || l.Origin(c.key) != c.origin {
			t.Errorf("%s = %q from %q, want %q from %q", c.key, got, l.Origin(c.key), c.want, c.origin)
		}
	}
	want := map[string]string{"log.level": path + ":6", "publisher.compression_level": "$FERRY_PUBLISHER_COMPRESSION_LEVEL",
		"publisher.chunk_size": "$FERRY_PUBLISHER_CHUNK_SIZE"}
	if len(ps) != len(want) {
		t.Fatalf("problems %v, want one each for %v", ps, want)
	}
	for _, p := range ps {
		if want[p.Key] != p.Source {
			t.Errorf("problem %v: want it from %s", p, want[p.Key])
		}
	}

	// A file that cannot be read is a problem; the variables still apply.
	l, ps = LoadLenient(filepath.Join(t.TempDir(), "nope.yaml"), env(map[string]string{"FERRY_NATS_URL": "nats://env:1"}))
	if len(ps) != 1 || l.NATS.URL != "nats://env:1" {
		t.Fatalf("missing file: %v, url %s", ps, l.NATS.URL)
	}
}
