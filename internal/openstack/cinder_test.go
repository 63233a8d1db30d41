package openstack_test

import (
	"context"
	"fmt"
	"github.com/ferry-dr/ferry/internal/testutil"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/openstack"
	"github.com/gophercloud/gophercloud/v2"
)

// Merge writes Ferry's keys and keeps the operator's; a success removes a
// previous error; everything is read back from Cinder.
func TestMergeKeepsOperatorKeys(t *testing.T) {
	ctx := context.Background()
	c := noauthClients(t, noauthProject)
	md := openstack.NewMetadata(c)
	id := newVolume(t, c, "merge", map[string]string{"owner": "team-db", "ferry:policy": "gold"})
	vol := openstack.Target{Kind: openstack.Volume, ID: id}

	failed := imageState("volume-"+id, ferry.StatusFailed)
	failed.LastError = "import volumes/volume-" + id + "@ferry-1: backup site full\nsecond line"
	m, clear := openstack.StatusMetadata(failed, "dr-site")
	if clear {
		t.Fatal("a failure must not clear ferry:error")
	}
	if err := md.Merge(ctx, vol, m); err != nil {
		t.Fatal(err)
	}
	got := metadataOf(t, md, id)
	want := map[string]string{"owner": "team-db", "ferry:policy": "gold", "ferry:status": "failed", "ferry:site": "dr-site",
		"ferry:error": "import volumes/volume-" + id + "@ferry-1: backup site full second line"}
	requireMetadata(t, got, want)

	ok := imageState("volume-"+id, ferry.StatusOK)
	ok.LastSnapshot, ok.LastSuccess, ok.Consistency = "ferry-20260101T000000.000000000Z", time.Date(2026, 1, 1, 0, 0, 1, 0, time.UTC), ferry.Quiesced
	m, clear = openstack.StatusMetadata(ok, "dr-site")
	if err := md.Merge(ctx, vol, m); err != nil {
		t.Fatal(err)
	}
	if clear {
		if err := md.Delete(ctx, vol, openstack.KeyError); err != nil {
			t.Fatal(err)
		}
	}
	got = metadataOf(t, md, id)
	want = map[string]string{"owner": "team-db", "ferry:policy": "gold", "ferry:status": "ok", "ferry:site": "dr-site",
		"ferry:last_snapshot": "ferry-20260101T000000.000000000Z", "ferry:last_success": "2026-01-01T00:00:01Z", "ferry:consistency": "quiesced"}
	requireMetadata(t, got, want)
	// Deleting a key that is gone is not an error.
	if err := md.Delete(ctx, vol, openstack.KeyError); err != nil {
		t.Fatal(err)
	}
}

// The 255 limit is Cinder's, not ours: one byte more is refused, and what
// Truncate makes of a long multi-byte error is taken.
func TestValueLimitIsCinders(t *testing.T) {
	ctx := context.Background()
	c := noauthClients(t, noauthProject)
	md := openstack.NewMetadata(c)
	id := newVolume(t, c, "limit", nil)

	raw := map[string]any{"metadata": map[string]string{"ferry:error": strings.Repeat("x", 256)}}
	_, err := c.Volume.Post(ctx, c.Volume.ServiceURL("volumes", id, "metadata"), raw, nil, &gophercloud.RequestOpts{OkCodes: []int{200}})
	if !gophercloud.ResponseCodeIs(err, 400) {
		t.Fatalf("cinder took a 256-character value (err %v): the limit in this package is wrong", err)
	}
	long := strings.Repeat("ошибка ", 60) // 2-byte runes, 780 bytes
	v := openstack.Truncate(long, openstack.MaxValueLen)
	if err := md.Merge(ctx, openstack.Target{Kind: openstack.Volume, ID: id}, map[string]string{openstack.KeyError: v}); err != nil {
		t.Fatal(err)
	}
	if got := metadataOf(t, md, id)[openstack.KeyError]; got != v {
		t.Fatalf("cinder holds %q, want %q", got, v)
	}
}

// A volume that does not exist is a classified 404, not a generic error.
func TestMissingVolumeIsNotFound(t *testing.T) {
	md := openstack.NewMetadata(noauthClients(t, noauthProject))
	err := md.Merge(context.Background(), openstack.Target{Kind: openstack.Volume, ID: "00000000-0000-4000-8000-000000000000"},
		map[string]string{openstack.KeyStatus: "ok"})
	requireKind(t, err, openstack.KindNotFound, 404)
}

func TestVolumesWithPolicy(t *testing.T) {
	project := "0000000000000000000000000000a11c"
	c := noauthClients(t, project)
	gold1 := newVolume(t, c, "gold-1", map[string]string{"ferry:policy": "gold", "owner": "x"})
	gold2 := newVolume(t, c, "gold-2", map[string]string{"ferry:policy": "gold"})
	newVolume(t, c, "silver", map[string]string{"ferry:policy": "silver"})
	newVolume(t, c, "none", nil)
	got, err := openstack.VolumesWithPolicy(context.Background(), c, "gold", false)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, v := range got {
		ids = append(ids, v.ID)
		if v.RBDImage() != "volume-"+v.ID || v.Status != "available" {
			t.Errorf("volume %+v", v)
		}
	}
	want := []string{gold1, gold2}
	if gold2 < gold1 {
		want = []string{gold2, gold1}
	}
	if fmt.Sprint(ids) != fmt.Sprint(want) {
		t.Fatalf("gold volumes %v, want %v", ids, want)
	}
}

// The syncer against a real Cinder: catch-up on start, live updates, an
// image that is no OpenStack disk, and a volume that does not exist (logged
// once, retried, and not in the way of the others).
func TestSyncerCatchUpAndUpdates(t *testing.T) {
	c := noauthClients(t, noauthProject)
	md := openstack.NewMetadata(c)
	conn, book := stateBucket(t)
	ctx := context.Background()

	early := newVolume(t, c, "early", map[string]string{"owner": "ops"})
	st := imageState("volume-"+early, ferry.StatusOK)
	st.LastSnapshot, st.LastSuccess = "ferry-a", time.Now().UTC().Truncate(time.Second)
	if err := book.Put(ctx, st); err != nil {
		t.Fatal(err)
	}
	gone := imageState("volume-00000000-0000-4000-8000-00000000dead", ferry.StatusOK)
	plain := imageState("some-libvirt-disk", ferry.StatusOK)
	for _, s := range []*ferry.ImageState{gone, plain} {
		if err := book.Put(ctx, s); err != nil {
			t.Fatal(err)
		}
	}

	logs := &testutil.LogBuffer{}
	s, err := openstack.NewSyncer(ctx, conn.Backup, md, openstack.SyncOptions{Site: "dr", MinBackoff: 50 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond, Log: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	defer func() { stop(); <-done }()

	waitFor(t, "catch-up writes the state that was there before the syncer", func() (bool, string) {
		got := metadataOf(t, md, early)
		return got["ferry:status"] == "ok" && got["ferry:last_snapshot"] == "ferry-a" && got["owner"] == "ops", fmt.Sprint(got)
	})

	// A volume whose image is named by the event's volume id, not volume-<id>.
	later := newVolume(t, c, "later", nil)
	byID := imageState("renamed-disk", ferry.StatusRunning)
	byID.VolumeID = later
	if err := book.Put(ctx, byID); err != nil {
		t.Fatal(err)
	}
	st.Status, st.LastError = ferry.StatusFailed, "chunk 1234 missing"
	if err := book.Put(ctx, st); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "live updates are written", func() (bool, string) {
		a, b := metadataOf(t, md, early), metadataOf(t, md, later)
		return a["ferry:status"] == "failed" && a["ferry:error"] == "chunk 1234 missing" && b["ferry:status"] == "running" && b["ferry:site"] == "dr",
			fmt.Sprint(a, b)
	})
	// Let the missing volume be retried a few times (backoff 50..200 ms).
	time.Sleep(time.Second)
	out := logs.String()
	if n := strings.Count(out, "target=\"volume 00000000-0000-4000-8000-00000000dead\""); n != 1 {
		t.Errorf("the missing volume was logged %d times, want once:\n%s", n, out)
	}
	if !strings.Contains(out, "kind=\"not found\"") || !strings.Contains(out, "not an OpenStack disk") {
		t.Errorf("log lacks the not-found warning or the ignored image:\n%s", out)
	}
}

func requireMetadata(t testing.TB, got, want map[string]string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("metadata\n got  %v\n want %v", got, want)
	}
}

func requireKind(t testing.TB, err error, kind openstack.ErrorKind, code int) {
	t.Helper()
	e, ok := err.(*openstack.APIError)
	if !ok || e.Kind != kind || e.Code != code {
		t.Fatalf("error %v (%T), want kind %q with HTTP %d", err, err, kind, code)
	}
}
