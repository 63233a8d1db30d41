package hooks

import (
	"context"
	"github.com/ferry-dr/ferry/internal/testutil"
	"log/slog"
	"maps"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
)

// staticPolicies is a PolicySource that answers from a map and counts the
// questions (Ferry's own interface, filled in by the test).
type staticPolicies struct {
	calls  atomic.Int32
	tagged map[string]string
}

func (s *staticPolicies) Policies(context.Context) (map[string]string, error) {
	s.calls.Add(1)
	return maps.Clone(s.tagged), nil
}

func policyVM(name, uuid string, volumes ...string) VM {
	vm := VM{Name: name, UUID: uuid, Disks: []Disk{{Target: "vda", Image: ferry.ImageSpec{Pool: "vms", Image: uuid + "_disk"}, Ephemeral: true}}}
	for _, v := range volumes {
		vm.Disks = append(vm.Disks, Disk{Image: ferry.ImageSpec{Pool: "volumes", Image: "volume-" + v}, VolumeID: v})
	}
	return vm
}

func TestPlanPolicies(t *testing.T) {
	policies := map[string]time.Duration{"daily": 24 * time.Hour, "hourly": time.Hour}
	vms := []VM{
		policyVM("by-volume", "u1", "v1"),
		policyVM("by-instance", "u2", "v2"),
		policyVM("disagree", "u3", "v3", "v4"),
		policyVM("unknown", "u4", "v5"),
		policyVM("unknown-and-known", "u5", "v6", "v7"),
		policyVM("untagged", "u6", "v8"),
	}
	tagged := map[string]string{
		"v1": "daily",
		"u2": "hourly",
		"v3": "daily", "v4": "hourly",
		"v5": "weekly",
		"v6": "weekly", "v7": "daily",
		"u6-not-a-disk": "hourly", // an instance uuid that is none of the VM's disks
	}
	plan := PlanPolicies(vms, tagged, policies)

	var got []string
	for _, s := range plan.Schedules {
		got = append(got, s.Name+"="+s.Policy+"/"+s.Every.String())
	}
	want := []string{"by-instance=hourly/1h0m0s", "by-volume=daily/24h0m0s", "disagree=hourly/1h0m0s", "unknown-and-known=daily/24h0m0s"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("schedules %v, want %v", got, want)
	}
	if plan.Schedules[0].Domain != "u2" {
		t.Errorf("schedule %+v: want the domain UUID u2", plan.Schedules[0])
	}

	notes := strings.Join(plan.Notes, "\n")
	for _, n := range []string{
		"domain disagree: its disks disagree on ferry:policy (volumes/volume-v3=daily, volumes/volume-v4=hourly); using hourly (1h0m0s), the shortest interval",
		"domain unknown: disk volumes/volume-v5 has ferry:policy=weekly, which this agent does not define (known: daily=24h0m0s, hourly=1h0m0s)",
		"domain unknown-and-known: disk volumes/volume-v6 has ferry:policy=weekly",
		"domain unknown-and-known: its disks disagree on ferry:policy",
	} {
		if !strings.Contains(notes, n) {
			t.Errorf("notes lack %q:\n%s", n, notes)
		}
	}
	if len(plan.Notes) != 4 {
		t.Errorf("%d notes, want 4:\n%s", len(plan.Notes), notes)
	}
	// The same input gives the same notes: the agent logs each once.
	if again := PlanPolicies(vms, tagged, policies); strings.Join(again.Notes, "\n") != notes {
		t.Errorf("notes differ between two identical plans:\n%s\n---\n%s", notes, strings.Join(again.Notes, "\n"))
	}
}

func TestPolicyTimers(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var p policyTimers
	if _, ok := p.wake(); ok {
		t.Fatal("empty timers want to wake")
	}
	p.update([]PolicySchedule{{Domain: "a", Every: time.Hour}, {Domain: "b", Every: 10 * time.Minute}}, t0)
	if at, _ := p.wake(); !at.Equal(t0.Add(10 * time.Minute)) {
		t.Fatalf("wake at %v, want t0+10m", at)
	}
	if d := p.due(t0.Add(9 * time.Minute)); len(d) != 0 {
		t.Fatalf("due too early: %+v", d)
	}
	// b missed three intervals: one backup, then one interval later again.
	if d := p.due(t0.Add(35 * time.Minute)); len(d) != 1 || d[0].Domain != "b" {
		t.Fatalf("due at t0+35m: %+v, want b", d)
	}
	if at, _ := p.wake(); !at.Equal(t0.Add(45 * time.Minute)) {
		t.Fatalf("wake at %v, want t0+45m", at)
	}
	// a gets a shorter interval: due at its old start plus the new interval.
	p.update([]PolicySchedule{{Domain: "a", Every: 20 * time.Minute}, {Domain: "b", Every: 10 * time.Minute}}, t0.Add(36*time.Minute))
	if d := p.due(t0.Add(36 * time.Minute)); len(d) != 1 || d[0].Domain != "a" {
		t.Fatalf("due after a's interval shrank: %+v, want a", d)
	}
	// A longer interval counts from b's last backup at t0+35m.
	p.update([]PolicySchedule{{Domain: "a", Every: 20 * time.Minute}, {Domain: "b", Every: 24 * time.Hour}}, t0.Add(40*time.Minute))
	if got := p.next["b"]; !got.Equal(t0.Add(35*time.Minute + 24*time.Hour)) {
		t.Fatalf("b next at %v, want t0+35m+24h", got)
	}
	// Opted out: gone.
	p.update([]PolicySchedule{{Domain: "b", Every: 24 * time.Hour}}, t0.Add(41*time.Minute))
	if d := p.due(t0.Add(48 * time.Hour)); len(d) != 1 || d[0].Domain != "b" {
		t.Fatalf("due after a opted out: %+v, want only b", d)
	}
}

// The agent on libvirt's test driver with real RBD disks: a VM whose volume
// opted in is backed up on its policy's interval; a VM whose policy is
// unknown is logged once, however often the policies are refreshed, and
// never backed up.
func TestAgentBacksUpOptedInDomains(t *testing.T) {
	source, _ := cephtest.Sites(t)
	hv := openTestDriver(t)
	in := defineVM(t, hv, 2, mib)
	typo := defineVM(t, hv, 1, mib)
	for _, v := range []testVM{in, typo} {
		if err := hv.Start(v.name); err != nil {
			t.Fatal(err)
		}
	}
	_, conn := startNATS(t)
	volumeID := strings.TrimPrefix(in.disks[1].Image, "volume-")
	src := &staticPolicies{tagged: map[string]string{volumeID: "fast", typo.uuid: "fats"}}
	logs := &testutil.LogBuffer{}
	a := NewAgent(AgentOptions{
		URI: "test:///default", Host: "hv-" + strings.ToLower(newUUID(t)[:8]), Clusters: newClusters(t), Bus: conn,
		Log: slog.New(slog.NewTextHandler(logs, nil)), ReconnectWait: 50 * time.Millisecond,
		Snapshot:     SnapshotOptions{MarkerDir: t.TempDir()},
		PolicySource: src, Policies: map[string]time.Duration{"fast": 300 * time.Millisecond}, PolicyRefresh: 50 * time.Millisecond,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})

	waitFor(t, "two policy snapshots of the opted-in VM", func() bool { return len(cephtest.SnapshotNames(t, source, in.disks[0])) >= 2 })
	waitFor(t, "ten policy refreshes", func() bool { return src.calls.Load() >= 10 })
	for _, spec := range in.disks {
		for _, s := range cephtest.SnapshotNames(t, source, spec) {
			if !ferry.IsFerrySnapshot(s) {
				t.Fatalf("%s: unexpected snapshot %q", spec, s)
			}
		}
	}
	if got := cephtest.SnapshotNames(t, source, typo.disks[0]); len(got) != 0 {
		t.Fatalf("VM with an unknown policy has snapshots %v", got)
	}
	waitFor(t, "two snapshot events of the opted-in volume", func() bool {
		n, _ := queuedEvents(t, conn, in.disks[1])
		return n >= 2
	})
	want := "ferry:policy=fats, which this agent does not define"
	if n := strings.Count(logs.String(), want); n != 1 {
		t.Fatalf("unknown policy logged %d times, want once; logs:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "domain opted in") {
		t.Fatalf("no opt-in logged; logs:\n%s", logs.String())
	}
}
