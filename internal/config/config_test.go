package config

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/testutil"
)

func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ferry.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func problems(t *testing.T, err error) Problems {
	t.Helper()
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("want Problems, got %v", err)
	}
	return ps
}

// The example shipped in the package sets nothing as installed (every key
// is commented out); uncommented as it says (the first '#' of each line
// below its header), it loads, sets every key, and documents each one with
// a comment (the line above it or the comment block of its group).
func TestExampleFileCoversEveryKey(t *testing.T) {
	installed := filepath.Join("..", "..", "packaging", "ferry.yaml")
	l, err := Load(installed, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Keys() {
		if o := l.Origin(k.Name); o != "" {
			t.Errorf("the installed example sets %s (%s): every key must be commented out", k.Name, o)
		}
	}
	path := testutil.UncommentedConfig(t, installed)
	l, err = Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Publisher.ChunkSize != 4<<20 || l.Consumer.BaseWait != 30*time.Minute || l.Ceph.Source.ID != "ferry" {
		t.Fatalf("example loaded as %+v", l.Config)
	}
	raw, _ := os.ReadFile(path)
	lines := strings.Split(string(raw), "\n")
	for _, k := range Keys() {
		if l.Origin(k.Name) == "" && !strings.Contains(string(raw), lastPart(k.Name)+":") {
			t.Errorf("example does not mention %s", k.Name)
		}
		if o := l.Origin(k.Name); o != "" {
			line, err := strconv.Atoi(o[strings.LastIndex(o, ":")+1:])
			if err != nil {
				t.Fatal(err)
			}
			if !commentedAbove(lines, line-1) {
				t.Errorf("%s (line %d) has no comment above it", k.Name, line)
			}
		}
	}
}

func lastPart(key string) string { return key[strings.LastIndex(key, ".")+1:] }

// commentedAbove: a comment line precedes line i, possibly past sibling keys
// that share one comment (source_domain/backup_domain, the backup site's trio).
func commentedAbove(lines []string, i int) bool {
	indent := len(lines[i]) - len(strings.TrimLeft(lines[i], " "))
	for j := i - 1; j >= 0; j-- {
		s := strings.TrimLeft(lines[j], " ")
		if strings.HasPrefix(s, "#") {
			return true
		}
		if len(lines[j])-len(s) != indent {
			return false
		}
	}
	return false
}

func TestPrecedenceDefaultFileEnv(t *testing.T) {
	path := writeFile(t, "nats:\n  url: nats://file:4222\n  creds: /file.creds\npublisher:\n  chunk_size: 1MiB\n")
	l, err := Load(path, env(map[string]string{"FERRY_NATS_URL": "nats://env:4222", "FERRY_CONSUMER_BASE_WAIT": "5m"}))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ key, want, origin string }{
		{"nats.url", "nats://env:4222", "$FERRY_NATS_URL"}, // env beats file
		{"nats.creds", "/file.creds", path + ":3"},         // file beats default
		{"publisher.chunk_size", "1048576", path + ":5"},   // sizes with units
		{"consumer.base_wait", "5m0s", "$FERRY_CONSUMER_BASE_WAIT"},
		{"publisher.compression_level", "6", ""}, // default
	}
	for _, c := range checks {
		got, ok := l.Value(c.key)
		if !ok || got != c.want || l.Origin(c.key) != c.origin {
			t.Errorf("%s = %q from %q, want %q from %q", c.key, got, l.Origin(c.key), c.want, c.origin)
		}
	}
}

func TestStrictDecodingNamesFileKeyAndLine(t *testing.T) {
	path := writeFile(t, strings.Join([]string{
		"nats:",
		"  ulr: nats://x:4222", // 2: typo
		"publisher:",
		"  chunk_size: 3MiB",        // 4: not a power of two (reported once the file decodes)
		"  compression_level: fast", // 5: not an integer
		"consumer:",
		"  base_wait: 10", // 7: no unit
		"  colour: blue",  // 8: unknown
		"bogus: 1",        // 9: unknown section
		"log: [debug]",    // 10: a list where a section belongs
	}, "\n"))
	_, err := Load(path, nil)
	ps := problems(t, err)
	want := []string{
		path + ":2: nats.ulr: unknown key (did you mean url?)",
		path + ":5: publisher.compression_level: \"fast\" is not an integer",
		path + ":7: consumer.base_wait: \"10\" is not a duration",
		path + ":8: consumer.colour: unknown key",
		path + ":9: bogus: unknown key",
		path + ":10: log: want a section of keys",
	}
	if len(ps) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(ps[i].String(), w) {
			t.Errorf("problem %d: %q, want prefix %q", i, ps[i], w)
		}
	}
}

func TestValidationNamesOrigin(t *testing.T) {
	path := writeFile(t, "publisher:\n  chunk_size: 3MiB\nceph:\n  backup:\n    id: client.ferry\nlog:\n  level: loud\n")
	_, err := Load(path, env(map[string]string{"FERRY_CONSUMER_METRICS_LISTEN": "9732", "FERRY_NATS_URL": "http://x", "FERRY_PUBLISHER_COMPRESSION_LEVEL": "0"}))
	got := problems(t, err).Error()
	for _, w := range []string{
		path + ":2: publisher.chunk_size: 3145728: want a power of two",
		path + ":5: ceph.backup.id: \"client.ferry\": give the id without",
		path + ":7: log.level: \"loud\"",
		"$FERRY_CONSUMER_METRICS_LISTEN: consumer.metrics_listen: \"9732\": want HOST:PORT",
		"$FERRY_NATS_URL: nats.url: \"http://x\" is not a NATS URL",
		"$FERRY_PUBLISHER_COMPRESSION_LEVEL: publisher.compression_level: 0: want 1",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in\n%s", w, got)
		}
	}
}

func TestEnvParseErrorNamesVariable(t *testing.T) {
	_, err := Load("", env(map[string]string{"FERRY_PUBLISHER_CHUNK_SIZE": "lots"}))
	if ps := problems(t, err); len(ps) != 1 || ps[0].Source != "$FERRY_PUBLISHER_CHUNK_SIZE" || ps[0].Key != "publisher.chunk_size" {
		t.Fatalf("got %v", err)
	}
}

func TestMissingFileAndBadYAML(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), nil)
	if ps := problems(t, err); !strings.Contains(ps[0].Why, "no such file") {
		t.Fatalf("got %v", err)
	}
	path := writeFile(t, "nats:\n  url: [unclosed\n")
	_, err = Load(path, nil)
	if ps := problems(t, err); ps[0].Source != path || !strings.Contains(ps[0].Why, "line") {
		t.Fatalf("got %v", err)
	}
	path = writeFile(t, "nats:\n  url: nats://a:1\n  url: nats://b:1\n")
	_, err = Load(path, nil)
	if ps := problems(t, err); !strings.Contains(ps[0].String(), "nats.url") {
		t.Fatalf("duplicate key: got %v", err)
	}
}

func TestEmptyValuesKeepDefaults(t *testing.T) {
	l, err := Load(writeFile(t, "nats:\n  url:\nconsumer:\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.NATS.URL != Default().NATS.URL || l.Consumer.Site != "backup" {
		t.Fatalf("got %+v", l.Config)
	}
}

func TestCheckReadsNamedFiles(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "ceph.conf")
	if err := os.WriteFile(conf, []byte("[global]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, "ceph:\n  source:\n    conf: "+conf+"\n    keyring: "+filepath.Join(dir, "missing.keyring")+"\n")
	if _, err := Load(path, nil); err != nil {
		t.Fatalf("Load must not look at files: %v", err)
	}
	_, err := Check(path, nil)
	ps := problems(t, err)
	if len(ps) != 1 || ps[0].Key != "ceph.source.keyring" || ps[0].Source != path+":4" || !strings.Contains(ps[0].Why, "no such file") {
		t.Fatalf("got %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]Size{"65536": 64 << 10, "64KiB": 64 << 10, "4MiB": 4 << 20, "1 GiB": 1 << 30} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("%q: %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "4MB", "-1", "1.5MiB", "99999999999999GiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
}

func TestKeysHaveEnvNames(t *testing.T) {
	seen := map[string]bool{}
	for _, k := range Keys() {
		if seen[k.Env] {
			t.Fatalf("two keys map to %s", k.Env)
		}
		seen[k.Env] = true
	}
	for _, want := range []string{"FERRY_NATS_URL", "FERRY_NATS_CREDS", "FERRY_CEPH_BACKUP_KEYRING", "FERRY_LOG_LEVEL"} {
		if !seen[want] {
			t.Errorf("no key for %s", want)
		}
	}
}

// The operations guide lists every key with its environment variable.
func TestDocsListEveryKey(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Keys() {
		if !strings.Contains(string(raw), "| `"+k.Name+"` | `"+k.Env+"` |") {
			t.Errorf("docs/operations.md has no table row for %s ($%s)", k.Name, k.Env)
		}
	}
}
