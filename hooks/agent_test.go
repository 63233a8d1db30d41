package hooks

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/ferry-dr/ferry/internal/testutil"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/virt"
	"github.com/nats-io/nats.go/jetstream"
)

// startAgent runs an agent on test:///default until the test ends.
func startAgent(t *testing.T, conn *bus.Conn, o AgentOptions) *Agent {
	t.Helper()
	return startAgentOn(t, "test:///default", conn, o)
}

// startAgentOn runs an agent on the libvirt at uri until the test ends.
func startAgentOn(t *testing.T, uri string, conn *bus.Conn, o AgentOptions) *Agent {
	t.Helper()
	o.URI = uri
	o.Host = "hv-" + strings.ToLower(newUUID(t)[:8])
	o.Clusters = newClusters(t)
	o.Bus = conn
	o.Log = testLogger(t)
	o.ReconnectWait = 50 * time.Millisecond
	if o.Snapshot.MarkerDir == "" {
		o.Snapshot.MarkerDir = t.TempDir()
	}
	a := NewAgent(o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	waitFor(t, "the agent's libvirt connection", func() bool { return a.Conn() != nil })
	return a
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.CheckFor(t, time.Minute, 20*time.Millisecond, func() error {
		if !cond() {
			return fmt.Errorf("waiting for %s", what)
		}
		return nil
	})
}

// queuedEvents returns how many snapshot events are queued in JetStream
// for spec, and the last one. (The stream is a work queue: reading it
// through a consumer would take the events from the publisher.)
func queuedEvents(t testing.TB, conn *bus.Conn, spec ferry.ImageSpec) (int, ferry.SnapshotEvent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := conn.Source.Stream(ctx, bus.SnapshotStream)
	if err != nil {
		t.Fatal(err)
	}
	subj := bus.Subject(bus.SnapshotSubject, spec)
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		t.Fatal(err)
	}
	n := int(info.State.Subjects[subj])
	var ev ferry.SnapshotEvent
	if n == 0 {
		return 0, ev
	}
	m, err := st.GetLastMsgForSubject(ctx, subj)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		t.Fatal(err)
	}
	return n, ev
}

func TestAgentOnDemandRequest(t *testing.T) {
	source, _ := cephtest.Sites(t)
	hv := openTestDriver(t)
	v := defineVM(t, hv, 2, mib)
	if err := hv.Start(v.name); err != nil {
		t.Fatal(err)
	}
	_, conn := startNATS(t)
	a := startAgent(t, conn, AgentOptions{})

	raw, _ := json.Marshal(BackupRequest{Domain: v.name})
	msg, err := conn.NC.Request(AgentSubject(a.o.Host), raw, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var r BackupReply
	if err := json.Unmarshal(msg.Data, &r); err != nil {
		t.Fatal(err)
	}
	if r.Error != "" || r.Consistency != ferry.Quiesced || r.FreezeDuration <= 0 || len(r.Disks) != 2 {
		t.Fatalf("reply %+v: want a quiesced snapshot of 2 disks", r)
	}
	for _, spec := range v.disks {
		if got := cephtest.SnapshotNames(t, source, spec); !slices.Equal(got, []string{r.Snapshot}) {
			t.Fatalf("%s: snapshots %v, want [%s]", spec, got, r.Snapshot)
		}
		n, ev := queuedEvents(t, conn, spec)
		if n != 1 || ev.Image != spec.AtSnap(r.Snapshot) || ev.Consistency != ferry.Quiesced ||
			ev.InstanceID != v.uuid || ev.FreezeDuration != r.FreezeDuration {
			t.Fatalf("%s: %d queued events, last %+v", spec, n, ev)
		}
	}

	// Errors come back in the reply.
	raw, _ = json.Marshal(BackupRequest{Domain: "no-such-vm"})
	if msg, err = conn.NC.Request(AgentSubject(a.o.Host), raw, time.Minute); err != nil {
		t.Fatal(err)
	}
	r = BackupReply{}
	if err := json.Unmarshal(msg.Data, &r); err != nil || !strings.Contains(r.Error, "no such domain") {
		t.Fatalf("reply %+v (%v): want a no-such-domain error", r, err)
	}
}

func TestAgentSchedule(t *testing.T) {
	source, _ := cephtest.Sites(t)
	hv := openTestDriver(t)
	v := defineVM(t, hv, 1, mib)
	if err := hv.Start(v.name); err != nil {
		t.Fatal(err)
	}
	_, conn := startNATS(t)
	startAgent(t, conn, AgentOptions{Schedules: []Schedule{{Domain: v.name, Every: 300 * time.Millisecond}}})
	waitFor(t, "two scheduled snapshots", func() bool { return len(cephtest.SnapshotNames(t, source, v.disks[0])) >= 2 })
	for _, s := range cephtest.SnapshotNames(t, source, v.disks[0]) {
		if !ferry.IsFerrySnapshot(s) {
			t.Fatalf("unexpected snapshot %q", s)
		}
	}
}

// The agent's connection is closed under it: it reconnects, registers its
// lifecycle callback again, and the next shutdown still gets its final
// backup.
func TestAgentReconnectsAndBacksUpOnShutdown(t *testing.T) {
	source, _ := cephtest.Sites(t)
	hv := openTestDriver(t)
	v := defineVM(t, hv, 2, mib)
	if err := hv.Start(v.name); err != nil {
		t.Fatal(err)
	}
	_, conn := startNATS(t)
	a := startAgent(t, conn, AgentOptions{BackupOnShutdown: true})

	for range 2 {
		old := a.Conn()
		if err := old.Close(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a new libvirt connection", func() bool { c := a.Conn(); return c != nil && c != old })
	}
	if _, err := a.Conn().Domain(v.name); err != nil {
		t.Fatalf("new connection does not work: %v", err)
	}
	if err := hv.Destroy(v.name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the final backup after shutdown", func() bool {
		return len(cephtest.SnapshotNames(t, source, v.disks[0])) == 1 && len(cephtest.SnapshotNames(t, source, v.disks[1])) == 1
	})
	snap := cephtest.SnapshotNames(t, source, v.disks[0])[0]
	if got := cephtest.SnapshotNames(t, source, v.disks[1]); got[0] != snap {
		t.Fatalf("disks have different snapshots: %s, %s", snap, got[0])
	}
	var ev ferry.SnapshotEvent
	waitFor(t, "the final backup's events", func() bool { n, e := queuedEvents(t, conn, v.disks[1]); ev = e; return n == 1 })
	if ev.Consistency != ferry.CrashConsistent || ev.FreezeDuration != 0 || ev.Domain != v.name || ev.Image.Snap != snap {
		t.Fatalf("event %+v: want crash-consistent, unfrozen (the domain is off), of %s", ev, snap)
	}
}

// A guest left frozen by a crashed agent is thawed when the agent starts.
func TestAgentThawsGuestsLeftFrozen(t *testing.T) {
	hv := openTestDriver(t)
	v := defineVM(t, hv, 1, mib)
	if err := hv.Start(v.name); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := writeMarker(dir, virt.Domain{Name: v.name, UUID: v.uuid}); err != nil {
		t.Fatal(err)
	}
	if err := hv.FSFreeze(v.name); err != nil {
		t.Fatal(err)
	}
	_, conn := startNATS(t)
	startAgent(t, conn, AgentOptions{Snapshot: SnapshotOptions{MarkerDir: dir}})
	waitFor(t, "the marker to go", func() bool {
		_, err := ThawMarked(hv, dir, testLogger(t)) // a second run must find nothing
		return err == nil && !markerExists(dir, v.uuid)
	})
}
