package hooks

import (
	"strings"
	"testing"
	"time"
)

// TestHookExitsZeroOnBadCalls: libvirtd treats a hook that fails as a
// failed operation on the VM, so ferry hook exits 0 however it is called:
// too few arguments, an unknown flag, a flag value that does not parse.
// Each time it says on stderr what was wrong.
func TestHookExitsZeroOnBadCalls(t *testing.T) {
	url := "nats://" + freeAddr(t)
	for name, args := range map[string][]string{
		"no arguments":        {"--nats", url},
		"one argument":        {"vm1", "--nats", url},
		"unknown flag":        {"--no-such-flag", "qemu", "vm1", "started", "begin", "-", "--nats", url},
		"flag does not parse": {"--budget", "soon", "qemu", "vm1", "started", "begin", "-", "--nats", url},
	} {
		t.Run(name, func(t *testing.T) {
			code, stderr, _ := runHookEnv(t, nil, nil, args...)
			if code != 0 || !strings.HasPrefix(stderr, "ferry hook: ") {
				t.Fatalf("exit %d, stderr %q; want 0 and the reason", code, stderr)
			}
			t.Log(strings.TrimSpace(stderr))
		})
	}
}

// TestHookBadVariableDropsOnlyItself: a FERRY_* variable that does not
// parse or validate is reported and left out; the others still apply (here
// the NATS URL, so the notice arrives).
func TestHookBadVariableDropsOnlyItself(t *testing.T) {
	url, host, sub := listenForNotices(t)
	env := []string{"FERRY_NATS_URL=" + url, "FERRY_PUBLISHER_CHUNK_SIZE=lots", "FERRY_PUBLISHER_COMPRESSION_LEVEL=42"}
	code, stderr, _ := runHookEnv(t, env, nil, "qemu", "vm1", "started", "begin", "-", "--host", host, "--budget", "5s")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, v := range []string{"$FERRY_PUBLISHER_CHUNK_SIZE", "$FERRY_PUBLISHER_COMPRESSION_LEVEL"} {
		if !strings.Contains(stderr, v) {
			t.Errorf("stderr %q does not name %s", stderr, v)
		}
	}
	if _, err := sub.NextMsg(10 * time.Second); err != nil {
		t.Fatalf("no notice at $FERRY_NATS_URL: %v; stderr %q", err, stderr)
	}
}
