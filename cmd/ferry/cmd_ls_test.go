package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/testbed"
)

// runOnBed runs ferry with both sites of the test bed in its config file.
func runOnBed(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bed := testbed.Shared(t)
	conf := writeConfig(t, fmt.Sprintf("ceph:\n  source: {conf: %s, id: %s, keyring: %s}\n  backup: {conf: %s, id: %s, keyring: %s}\n",
		bed.Source.Conf, bed.Source.ID, bed.Source.Keyring, bed.Backup.Conf, bed.Backup.ID, bed.Backup.Keyring))
	var out bytes.Buffer
	root := newRootCommand()
	root.SetOut(&out)
	root.SetArgs(append([]string{"--config", conf}, args...))
	err := root.Execute()
	return out.String(), err
}

// TestLsListsRestorePoints: ferry ls lists a backup image's Ferry
// snapshots oldest first, with the consistency the backup site recorded
// (unknown where it did not), the size, and the newest marked latest; its
// JSON keys are snake_case.
func TestLsListsRestorePoints(t *testing.T) {
	_, backup := cephtest.Sites(t)
	img := cephtest.Image(t, backup, "ls", 4<<20)
	names := []string{"ferry-20260101T000000.000000000Z", "ferry-20260102T000000.000000000Z", "ferry-20260103T000000.000000000Z"}
	for _, n := range names {
		cephtest.Snap(t, backup, img, n)
	}
	cephtest.Snap(t, backup, img, "by-hand") // not a restore point
	changed := uint64(1 << 20)
	infos := ferry.SnapInfos{names[0]: {Consistency: ferry.CrashConsistent, Full: true, ChangedBytes: &changed}, names[2]: {Consistency: ferry.Quiesced}}
	if err := backup.SetMetadata(img, ferry.SnapInfoKey, infos.Encode(names)); err != nil {
		t.Fatal(err)
	}

	out, err := runOnBed(t, "ls", img.String(), "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Image         string           `json:"image"`
		RestorePoints []map[string]any `json:"restore_points"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Image != img.String() || len(got.RestorePoints) != 3 {
		t.Fatalf("ls --json printed %s (%v)", out, err)
	}
	wantConsistency := []string{"crash", "unknown", "quiesced"}
	for i, p := range got.RestorePoints {
		for key := range p {
			if key != strings.ToLower(key) || strings.ContainsAny(key, " -") {
				t.Errorf("JSON key %q is not snake_case", key)
			}
		}
		if p["snapshot"] != names[i] || p["spec"] != img.AtSnap(names[i]).String() || p["consistency"] != wantConsistency[i] ||
			p["size_bytes"] != float64(4<<20) || p["latest"] != (i == 2) {
			t.Errorf("restore point %d: %v", i, p)
		}
		if taken, _ := p["taken"].(string); !strings.HasPrefix(taken, fmt.Sprintf("2026-01-0%dT00:00:00", i+1)) {
			t.Errorf("restore point %d taken %q, want the time its name holds", i, taken)
		}
	}
	if p := got.RestorePoints[0]; p["full"] != true || p["changed_bytes"] != float64(changed) {
		t.Errorf("first restore point %v: want full, with the changed bytes recorded", p)
	}
	if _, ok := got.RestorePoints[1]["changed_bytes"]; ok {
		t.Errorf("a restore point without a record shows changed bytes: %v", got.RestorePoints[1])
	}

	// Without an image: every image of the pool with restore points.
	out, err = runOnBed(t, "ls", "--pools", img.Pool, "--json")
	var all struct {
		Images []map[string]any `json:"images"`
	}
	if err != nil || json.Unmarshal([]byte(out), &all) != nil {
		t.Fatalf("ls --pools --json printed %s (%v)", out, err)
	}
	i := slices.IndexFunc(all.Images, func(m map[string]any) bool { return m["image"] == img.String() })
	if i < 0 || all.Images[i]["restore_point_count"] != float64(3) || all.Images[i]["latest"] != img.AtSnap(names[2]).String() ||
		all.Images[i]["latest_consistency"] != "quiesced" {
		t.Errorf("ls --pools lists %s as %v", img, all.Images[max(i, 0):min(i+1, len(all.Images))])
	}
	if _, err := runOnBed(t, "ls"); exitCodeOf(err) != exitUsage {
		t.Errorf("ls with neither an image nor pools: exit %d, %v", exitCodeOf(err), err)
	}

	out, err = runOnBed(t, "ls", img.String())
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 4 || !strings.HasPrefix(lines[0], "SNAPSHOT") || !strings.HasSuffix(lines[3], "latest") ||
		!slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, names[1]) && strings.Contains(l, "unknown") }) {
		t.Errorf("ls printed (%v):\n%s", err, out)
	}
}

// TestLatestAndMissingSnapshots: restore and verify take POOL/IMAGE@latest
// as the newest Ferry snapshot; a snapshot that is not there is named as
// such, with where to find the ones that are.
func TestLatestAndMissingSnapshots(t *testing.T) {
	source, backup := cephtest.Sites(t)
	img := cephtest.Image(t, source, "latest", 2<<20)
	if err := backup.CreateImage(img, 2<<20); err != nil {
		t.Fatal(err)
	}
	for i, n := range []string{"ferry-20260101T000000.000000000Z", "ferry-20260102T000000.000000000Z"} {
		data := bytes.Repeat([]byte{byte(i + 1)}, 64<<10)
		cephtest.Write(t, source, img, 0, data)
		cephtest.Write(t, backup, img, 0, data)
		cephtest.Snap(t, source, img, n)
		cephtest.Snap(t, backup, img, n)
	}
	cephtest.Snap(t, backup, img, "by-hand")
	newest := img.AtSnap("ferry-20260102T000000.000000000Z")

	bed := testbed.Shared(t)
	out, err := runOnBed(t, "verify", img.AtSnap("latest").String(), "--no-progress",
		"--backup-conf", bed.Backup.Conf, "--backup-id", bed.Backup.ID, "--backup-keyring", bed.Backup.Keyring)
	if err != nil || !strings.Contains(out, "identical: "+newest.String()) {
		t.Errorf("verify @latest: %v\n%s", err, out)
	}
	target := ferry.ImageSpec{Pool: img.Pool, Image: testbed.ImageName(t, "restored")}
	out, err = runOnBed(t, "restore", img.AtSnap("latest").String(), "--to", target.String(), "--no-progress")
	if err != nil || !strings.Contains(out, "restored "+newest.String()+" into "+target.String()) {
		t.Errorf("restore @latest: %v\n%s", err, out)
	}
	cephtest.RequireSameContent(t, backup, newest, backup, target)

	_, err = runOnBed(t, "restore", img.AtSnap("nope").String(), "--to", target.String()+"-2", "--no-progress")
	want := fmt.Sprintf("snapshot %s not found (ferry ls %s lists the restore points", img.AtSnap("nope"), img)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("restore of a missing snapshot: %v, want %q", err, want)
	}
	none := cephtest.Image(t, backup, "none", 1<<20)
	_, err = runOnBed(t, "restore", none.AtSnap("latest").String(), "--to", target.String()+"-3", "--no-progress")
	if err == nil || !strings.Contains(err.Error(), "holds no Ferry snapshot") {
		t.Errorf("restore @latest of an image without Ferry snapshots: %v", err)
	}
}
