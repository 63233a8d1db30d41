package hooks

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/virt"
)

// reconnect replaces the test's own libvirt connection after a restart.
func (r *realLibvirt) reconnect(t testing.TB) {
	t.Helper()
	hv, err := virt.Open(r.daemons.URI)
	if err != nil {
		t.Fatalf("reconnect to the restarted libvirtd: %v", err)
	}
	t.Cleanup(func() { _ = hv.Close() })
	r.hv = hv
}

// requestBackup asks the agent for a backup over NATS and returns its reply.
func requestBackup(t *testing.T, a *Agent, domain string) BackupReply {
	t.Helper()
	raw, _ := json.Marshal(BackupRequest{Domain: domain})
	msg, err := a.o.Bus.NC.Request(AgentSubject(a.o.Host), raw, 2*time.Minute)
	if err != nil {
		t.Fatalf("backup request: %v", err)
	}
	var r BackupReply
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// The real libvirtd restarts under a running agent (SIGTERM and a new
// daemon, the guest keeps running): the agent notices, connects to the new
// daemon, and both its request path (a quiesced snapshot of the real guest
// through the new connection) and its lifecycle callback (the final backup
// when the guest is destroyed afterwards) work again.
func TestAgentSurvivesLibvirtdRestart(t *testing.T) {
	source, _ := cephtest.Sites(t)
	r := startRealLibvirt(t)
	g := r.bootGuest(t, 1)
	g.waitAgent(t)
	disk := g.disks[0]
	_, conn := startNATS(t)
	a := startAgentOn(t, r.daemons.URI, conn, AgentOptions{BackupOnShutdown: true})

	before := requestBackup(t, a, g.guest.Name)
	if before.Error != "" || before.Consistency != ferry.Quiesced {
		t.Fatalf("backup before the restart: %+v", before)
	}

	old := a.Conn()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t0 := time.Now()
	if err := r.daemons.RestartLibvirtd(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-old.Done():
	case <-time.After(time.Minute):
		t.Fatal("the agent's old connection did not end when libvirtd restarted")
	}
	waitFor(t, "the agent's connection to the new libvirtd", func() bool { c := a.Conn(); return c != nil && c != old })
	t.Logf("libvirtd restarted; the agent reconnected %.1fs after the restart began", time.Since(t0).Seconds())
	r.reconnect(t)
	if dom, err := r.hv.Domain(g.guest.Name); err != nil || dom.State != virt.StateRunning {
		t.Fatalf("guest after the libvirtd restart: %+v, %v: want it still running", dom.State, err)
	}

	// The new libvirtd reconnects to the guest agent's channel a moment
	// after it answers itself; a backup in between is crash-consistent
	// (the agent is "not connected"), so wait as an operator's next
	// schedule would.
	g.waitAgent(t)

	// The request path, through the new connection, on the real guest.
	after := requestBackup(t, a, g.guest.Name)
	if after.Error != "" || after.Consistency != ferry.Quiesced || after.FreezeDuration <= 0 {
		t.Fatalf("backup after the restart: %+v: want a quiesced snapshot", after)
	}
	g.requireThawed(t)
	if got := cephtest.SnapshotNames(t, source, disk); !slices.Equal(got, []string{before.Snapshot, after.Snapshot}) {
		t.Fatalf("%s: snapshots %v, want [%s %s]", disk, got, before.Snapshot, after.Snapshot)
	}

	// The lifecycle callback, registered again on the new connection.
	if err := r.hv.Destroy(g.guest.Name); err != nil {
		t.Fatal(err)
	}
	var final string
	waitFor(t, "the final backup after the guest stopped", func() bool {
		got := cephtest.SnapshotNames(t, source, disk)
		if len(got) == 3 {
			final = got[2]
		}
		return len(got) == 3
	})
	var ev ferry.SnapshotEvent
	waitFor(t, "the final backup's event", func() bool { n, e := queuedEvents(t, conn, disk); ev = e; return n == 3 })
	if ev.Image != disk.AtSnap(final) || ev.Consistency != ferry.CrashConsistent || ev.Domain != g.guest.Name {
		t.Fatalf("last event %+v: want the crash-consistent final backup %s of %s", ev, final, g.guest.Name)
	}
}
