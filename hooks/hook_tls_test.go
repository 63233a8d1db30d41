package hooks

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/siteinit"
	"github.com/ferry-dr/ferry/internal/siteinit/siteinittest"
)

// TestHookNoticeOverTLS: with the agent's configuration file from ferry
// init (CA, client certificate), the hook's notice reaches the source
// site's server over TLS and the agent's identity receives it; without the
// CA it is refused, and the hook still exits 0. The budget is generous: this
// test is about delivery, and a loaded test machine once took longer than
// the default 50 ms (warm, a TLS notice costs 1.4-2.3 ms against 0.2-0.7 ms
// without TLS).
func TestHookNoticeOverTLS(t *testing.T) {
	sites := siteinittest.Start(t, false)
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

// TestAgentOverTLS: the agent runs with its own identity (it sets up the
// snapshot stream, takes requests, publishes events); an on-demand request
// with the publisher's identity is answered and the event is queued, and
// no request of either was refused.
func TestAgentOverTLS(t *testing.T) {
	sites := siteinittest.Start(t, false)
	hv := openTestDriver(t)
	v := defineVM(t, hv, 1, mib)
	if err := hv.Start(v.name); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, sites.Connect(t, bus.RoleAgent), AgentOptions{})
	pub := sites.Connect(t, bus.RolePublisher)
	raw, _ := json.Marshal(BackupRequest{Domain: v.name})
	msg, err := pub.NC.Request(AgentSubject(a.o.Host), raw, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var r BackupReply
	if err := json.Unmarshal(msg.Data, &r); err != nil || r.Error != "" {
		t.Fatalf("reply %+v (%v)", r, err)
	}
	if n, ev := queuedEvents(t, pub, v.disks[0]); n != 1 || ev.Image != v.disks[0].AtSnap(r.Snapshot) {
		t.Fatalf("%d queued events, last %+v", n, ev)
	}
	if v := sites.Violations(); len(v) > 0 {
		t.Fatalf("permission violations: %q", v)
	}
}
