package hooks

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/siteinit"
)

// TestHookNoticeOverTLS: with the agent's configuration file from ferry
// init (CA, client certificate), the hook's notice reaches the source
// site's server over TLS and the agent's identity receives it; without the
// CA it is refused, and the hook still exits 0. The budget is generous: this
// test is about delivery, and a loaded test machine once took longer than
// the default 50 ms (warm, a TLS notice costs 1.4-2.3 ms against 0.2-0.7 ms
// without TLS).
func TestHookNoticeOverTLS(t *testing.T) {
	sites := siteinit.StartTestSites(t, false)
	agent := sites.Connect(t, bus.RoleAgent)
	host := "hv-" + newUUID(t)[:8]
	sub, err := agent.NC.SubscribeSync(NoticeSubject(host, ">"))
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	o := sites.ConnOptions(bus.RoleAgent)
	v := testVM{name: "vm-tls", uuid: newUUID(t), nova: true}
	code, stderr, took := runHook(t, o.URL, host, []byte(v.xml()), "--config", filepath.Join(sites.Dir, siteinit.RoleConfig(bus.RoleAgent)), "--budget", "2s",
		"qemu", v.name, "started", "begin", "-")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no notice over TLS: %v", err)
	}
	if msg.Subject != NoticeSubject(host, "started") {
		t.Fatalf("subject %s", msg.Subject)
	}
	t.Logf("hook over TLS with a client certificate took %s", took)

	code, stderr, _ = runHook(t, o.URL, host, []byte(v.xml()), "--nats-cert", o.Cert, "--nats-key", o.Key, "qemu", v.name, "started", "begin", "-")
	if code != 0 || stderr == "" {
		t.Fatalf("without the CA: exit %d, stderr %q; want 0 and the refusal on stderr", code, stderr)
	}
	t.Logf("without the CA: %s", stderr)
}
