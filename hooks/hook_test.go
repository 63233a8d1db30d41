package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/ferry-dr/ferry/internal/testutil"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// ferryBinary builds cmd/ferry once per test run: the hook is tested as
// libvirtd runs it, as a process.
var ferryBinary = testutil.Lazy(func() (string, error) {
	dir, err := os.MkdirTemp("", "ferry-hook-test")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "ferry")
	if out, err := exec.Command("go", "build", "-tags", "pacific", "-o", bin, "../cmd/ferry").CombinedOutput(); err != nil {
		return "", fmt.Errorf("build ferry: %w\n%s", err, out)
	}
	return bin, nil
})

// runHook runs `ferry hook` like libvirtd does and returns its exit code,
// stderr and run time. A hook that never returns fails the test.
func runHook(t testing.TB, natsURL, host string, stdin []byte, args ...string) (int, string, time.Duration) {
	t.Helper()
	return runHookEnv(t, nil, stdin, append(args, "--nats", natsURL, "--host", host)...)
}

// runHookEnv is runHook with variables added to the environment and only
// the arguments given.
func runHookEnv(t testing.TB, env []string, stdin []byte, args ...string) (int, string, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ferryBinary(t), append([]string{"hook"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("the hook did not return (killed after 20 s); stderr: %s", stderr.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stderr.String(), took
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t testing.TB) string {
	return "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
}

// blackhole accepts TCP connections and never says a word: a NATS server
// that hangs, the worst case for a hook.
func blackhole(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

func TestHookExitsZeroWhenNATSIsDown(t *testing.T) {
	xml := []byte(testVM{name: "vm1", uuid: newUUID(t), nova: true}.xml())
	for name, addr := range map[string]string{"nothing listening": freeAddr(t), "server hangs": blackhole(t)} {
		t.Run(name, func(t *testing.T) {
			code, stderr, took := runHook(t, "nats://"+addr, "hv1", xml, "qemu", "vm1", "started", "begin", "-")
			if code != 0 {
				t.Fatalf("exit code %d, want 0; stderr: %s", code, stderr)
			}
			if stderr == "" {
				t.Fatal("the failure to notify was not reported on stderr")
			}
			t.Logf("returned in %s: %s", took, stderr)
		})
	}
	// Called wrongly (by hand), it still exits 0 and says why.
	if code, stderr, _ := runHook(t, "nats://"+freeAddr(t), "hv1", nil, "qemu", "vm1"); code != 0 || stderr == "" {
		t.Fatalf("bad call: exit %d, stderr %q", code, stderr)
	}
}

// listenForNotices starts a NATS server and subscribes to the notices of a
// new host there; it returns the server's URL, the host and the subscription.
func listenForNotices(t *testing.T) (string, string, *nats.Subscription) {
	t.Helper()
	srv, _ := startNATS(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	host := "hv-" + newUUID(t)[:8]
	sub, err := nc.SubscribeSync(NoticeSubject(host, ">"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return srv.ClientURL(), host, sub
}

func TestHookNoticeArrives(t *testing.T) {
	url, host, sub := listenForNotices(t)
	v := testVM{name: "vm-notice", uuid: newUUID(t), nova: true}
	code, stderr, _ := runHook(t, url, host, []byte(v.xml()), "qemu", v.name, "release", "end", "-")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no notice: %v", err)
	}
	if msg.Subject != NoticeSubject(host, "release") {
		t.Fatalf("subject %s, want %s", msg.Subject, NoticeSubject(host, "release"))
	}
	var n Notice
	if err := json.Unmarshal(msg.Data, &n); err != nil {
		t.Fatal(err)
	}
	if n.Domain != v.name || n.Op != "release" || n.SubOp != "end" || n.Extra != "-" || n.UUID != v.uuid || n.InstanceID != v.uuid || n.Host != host {
		t.Fatalf("notice %+v", n)
	}
}

// BenchmarkHookNATSDown measures the hook's run time, process start
// included, when NATS is down (nothing listening, or a server that hangs).
func BenchmarkHookNATSDown(b *testing.B) {
	xml := []byte(testVM{name: "vm1", uuid: newUUID(b), nova: true}.xml())
	for name, addr := range map[string]string{"refused": freeAddr(b), "hangs": blackhole(b)} {
		b.Run(name, func(b *testing.B) {
			ferryBinary(b)
			var worst time.Duration
			for b.Loop() {
				if code, _, took := runHook(b, "nats://"+addr, "hv1", xml, "qemu", "vm1", "prepare", "begin", "-"); code != 0 {
					b.Fatalf("exit %d", code)
				} else if took > worst {
					worst = took
				}
			}
			b.ReportMetric(float64(worst.Microseconds())/1000, "worst-ms")
		})
	}
}
