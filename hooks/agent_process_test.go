package hooks

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/openstack"
	"github.com/ferry-dr/ferry/internal/openstack/cindertest"
	"github.com/ferry-dr/ferry/internal/testbed"
)

// startCinder runs a real Cinder (noauth) for one test.
func startCinder(t *testing.T) *cindertest.Cinder {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "ferry-hooks-cinder-")
	if err != nil {
		t.Fatal(err)
	}
	c, err := cindertest.Start(ctx, dir)
	if err != nil {
		t.Fatalf("start Cinder (install cinder-api: .ci/install-deps.sh): %v", err)
	}
	t.Cleanup(func() {
		_ = c.Stop()
		if !t.Failed() {
			_ = os.RemoveAll(dir)
		}
	})
	return c
}

// nodeXML is a libvirt test-driver node file: its domains run inside the
// process that opens test:///PATH, here the agent under test.
func nodeXML(vms ...testVM) string {
	var b strings.Builder
	b.WriteString("<node>\n")
	for _, v := range vms {
		b.WriteString(v.xml())
	}
	b.WriteString("</node>\n")
	return b.String()
}

// `ferry agent run --openstack` as a process, as an operator starts it:
// the VM whose Cinder volume carries ferry:policy is snapshotted on that
// policy's interval and its events are queued; the VM whose volume does
// not is left alone until its volume is opted in while the agent runs.
// Cinder is real (noauth, no Nova); the domains live in libvirt's test
// driver inside the agent process (test:///PATH), with disks on the source
// Ceph site.
func TestAgentProcessOpenStackPolicies(t *testing.T) {
	source, _ := cephtest.Sites(t)
	sourceConnection := cephtest.Conn(testbed.Shared(t).Source)
	cinder := startCinder(t)
	ctx := context.Background()
	const project = "0000000000000000000000000000a9e7"
	os_, err := openstack.Connect(ctx, openstack.Config{NoAuthEndpoint: cinder.URL, NoAuthProject: project})
	if err != nil {
		t.Fatal(err)
	}
	newVM := func(name string, policy map[string]string) (testVM, string) {
		id, err := cindertest.CreateVolume(ctx, os_.Volume, name, policy)
		if err != nil {
			t.Fatalf("%v (cinder log: %s)", err, cinder.Log())
		}
		spec := ferry.ImageSpec{Pool: testbed.Pool, Image: "volume-" + id}
		if err := source.CreateImage(spec, mib); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { removeImage(source, spec) })
		return testVM{name: testbed.ImageName(t, name), uuid: newUUID(t), disks: []ferry.ImageSpec{spec}, monitor: monitorOf(t)}, id
	}
	optedIn, _ := newVM("opted-in", map[string]string{"ferry:policy": "fast"})
	later, laterVolume := newVM("later", nil)

	dir := t.TempDir()
	node := filepath.Join(dir, "node.xml")
	if err := os.WriteFile(node, []byte(nodeXML(optedIn, later)), 0o600); err != nil {
		t.Fatal(err)
	}
	s, conn := startNATS(t)
	host := "hv-" + strings.ToLower(newUUID(t)[:8])
	args := []string{"agent", "run", "--libvirt", "test://" + node, "--host", host,
		"--nats", s.ClientURL(), "--state-dir", filepath.Join(dir, "state"),
		"--openstack", "--cinder-noauth-endpoint", cinder.URL, "--cinder-noauth-project", project,
		"--policy", "fast=1s", "--policy", "daily=24h", "--policy-refresh", "500ms", "-c", sourceConnection.Conf}
	if sourceConnection.ID != "" {
		args = append(args, "--id", sourceConnection.ID)
	}
	if sourceConnection.Keyring != "" {
		args = append(args, "--keyring", sourceConnection.Keyring)
	}
	cmd := exec.Command(ferryBinary(t), args...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("ferry agent output:\n%s", logs.String())
		}
	})
	running := func() bool {
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("ferry agent exited: %v\n%s", err, logs.String())
		default:
		}
		return true
	}

	// The opted-in VM: two policy backups, quiesced (the test driver
	// freezes), each with its event queued.
	in := optedIn.disks[0]
	var ev ferry.SnapshotEvent
	waitFor(t, "two policy backups of the opted-in VM", func() bool {
		n, e := queuedEvents(t, conn, in)
		ev = e
		return running() && n >= 2
	})
	if ev.Domain != optedIn.name || ev.Consistency != ferry.Quiesced || ev.FreezeDuration <= 0 {
		t.Fatalf("last event queued for %s: %+v: want a quiesced snapshot of domain %s", in, ev, optedIn.name)
	}
	snaps := cephtest.SnapshotNames(t, source, in)
	if !slices.Contains(snaps, ev.Image.Snap) {
		t.Fatalf("%s: snapshots %v lack the queued %s", in, snaps, ev.Image.Snap)
	}
	for _, snap := range snaps {
		if !ferry.IsFerrySnapshot(snap) {
			t.Fatalf("%s: unexpected snapshot %s", in, snap)
		}
	}
	// The other VM was seen at the same refreshes, without a policy.
	if got := cephtest.SnapshotNames(t, source, later.disks[0]); len(got) != 0 {
		t.Fatalf("%s has snapshots %v without ferry:policy", later.disks[0], got)
	}

	// Opting the other VM in, while the agent runs, starts its schedule.
	md := map[string]string{"ferry:policy": "fast"}
	if err := openstack.NewMetadata(os_).Merge(ctx, openstack.Target{Kind: openstack.Volume, ID: laterVolume}, md); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a policy backup of the VM opted in later", func() bool {
		n, e := queuedEvents(t, conn, later.disks[0])
		ev = e
		return running() && n >= 1
	})
	if ev.Domain != later.name || !slices.Contains(cephtest.SnapshotNames(t, source, later.disks[0]), ev.Image.Snap) {
		t.Fatalf("event queued for %s: %+v: want a snapshot of domain %s that exists", later.disks[0], ev, later.name)
	}

	// SIGTERM ends it cleanly.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Fatalf("ferry agent after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ferry agent still runs 30 s after SIGTERM")
	}
}
