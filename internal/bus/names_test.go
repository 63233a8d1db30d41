package bus_test

import (
	"context"
	"encoding/hex"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"github.com/ferry-dr/ferry/internal/ferry"
)

// What JetStream takes as a key-value key, and as one subject token.
var (
	kvKey      = regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)
	badInToken = regexp.MustCompile(`[.*>\s]`)
)

// hostileNames are valid Ceph names with every character class that once
// broke a key: '.', '~', '=', spaces, wildcards, non-ASCII; plus every byte.
func hostileNames() []string {
	names := []string{"3f1c2b9e-8d7a-4c55-9e61-0a1b2c3d4e5f_disk.local", "vol.pre-resync-20260101T000000Z",
		"..", ".", "a b", "*", ">", "a.b", "a=2Eb", "a~2Eb", "=", "~", "快照", "a=3D"}
	for c := range 256 {
		if b := string([]byte{byte(c)}); !slices.Contains(names, b) {
			names = append(names, b)
		}
		names = append(names, "x"+string([]byte{byte(c)})+"y")
	}
	return names
}

// unescape reverses the key escape: the test's proof that it is injective.
func unescape(t *testing.T, tok string) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < len(tok); i++ {
		if tok[i] != '=' {
			b.WriteByte(tok[i])
			continue
		}
		raw, err := hex.DecodeString(tok[i+1 : i+3])
		if err != nil {
			t.Fatalf("token %q: bad escape at %d", tok, i)
		}
		b.Write(raw)
		i += 2
	}
	return b.String()
}

func TestImageKeyFitsKeysAndSubjects(t *testing.T) {
	for _, name := range hostileNames() {
		img := ferry.ImageSpec{Pool: "pool." + name, Image: name}
		key := bus.ImageKey(img)
		if !kvKey.MatchString(key) {
			t.Fatalf("key %q of %q is not a valid key-value key", key, name)
		}
		pool, image, ok := strings.Cut(key, ".")
		if !ok || pool == "" || image == "" || badInToken.MatchString(pool) || badInToken.MatchString(image) {
			t.Fatalf("key %q of %q is not two subject tokens", key, name)
		}
		if unescape(t, pool) != img.Pool || unescape(t, image) != img.Image {
			t.Fatalf("key %q does not read back into %q/%q", key, img.Pool, img.Image)
		}
	}
	// Names of letters, digits, '-' and '_' keep the keys they had.
	if got := bus.ImageKey(ferry.ImageSpec{Pool: "volumes", Image: "volume-0A1b_2"}); got != "volumes.volume-0A1b_2" {
		t.Fatalf("plain key changed: %s", got)
	}
}

// TestImageKeysOnJetStream: the state bucket and the manifest stream take the
// key and subject of every hostile name, and no two names share one.
func TestImageKeysOnJetStream(t *testing.T) {
	ctx := context.Background()
	c := bustest.Conn(t)
	kv, err := c.Backup.KeyValue(ctx, bus.StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, name := range hostileNames() {
		img := ferry.ImageSpec{Pool: "p", Image: name}
		key := bus.ImageKey(img)
		if other, dup := seen[key]; dup {
			t.Fatalf("%q and %q share the key %s", name, other, key)
		}
		seen[key] = name
		if _, err := kv.Put(ctx, key, []byte(name)); err != nil {
			t.Fatalf("put state of %q under %q: %v", name, key, err)
		}
		if _, err := c.Backup.Publish(ctx, bus.Subject(bus.ManifestSubject, img), nil); err != nil {
			t.Fatalf("publish on the subject of %q: %v", name, err)
		}
	}
	for key, name := range seen {
		e, err := kv.Get(ctx, key)
		if err != nil || string(e.Value()) != name {
			t.Fatalf("get %s: %v", key, err)
		}
	}
}

func TestRefusal(t *testing.T) {
	img := ferry.ImageSpec{Pool: "p", Image: "a.b", Snap: "s"}
	if err := bus.Refusal(bus.Subject(bus.FailedSubject, img), img, nil, bus.ConfirmedSubject, bus.FailedSubject); err != nil {
		t.Fatal(err)
	}
	for _, subject := range []string{
		bus.Subject(bus.ManifestSubject, ferry.ImageSpec{Pool: "p", Image: "other"}),
		bus.Subject(bus.SnapshotSubject, img), // right image, wrong stream
		bus.ManifestSubject + ".p.a.b",        // the image's name unescaped
	} {
		err := bus.Refusal(subject, img, nil, bus.ManifestSubject)
		if !errors.Is(err, ferry.ErrRefused) || !strings.Contains(err.Error(), `"p/a.b"`) {
			t.Errorf("subject %s for %s: %v", subject, img, err)
		}
	}
	bad := ferry.ImageSpec{Pool: "p", Image: "a/b"}
	err := bus.Refusal(bus.Subject(bus.ManifestSubject, bad), bad, bad.Validate(), bus.ManifestSubject)
	if !errors.Is(err, ferry.ErrRefused) || !strings.HasPrefix(err.Error(), `refused: image name "a/b"`) {
		t.Errorf("bad name: %v", err)
	}
}
