package consumer_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/recovery"
	"github.com/ferry-dr/ferry/internal/state"
	"github.com/ferry-dr/ferry/internal/testbed"
	"github.com/ferry-dr/ferry/internal/testutil"
	"github.com/ferry-dr/ferry/publisher"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestNovaEphemeralDisksBackUpAndRestore: Nova's ephemeral disks
// (<uuid>_disk.local, _disk.swap, _disk.config; '.' once broke their state
// key) and a name with spaces, wildcards and dots back up, in full through
// `ferry backup`'s path and incrementally through the publisher daemon's
// snapshot events, and restore into the source site over JetStream, each
// read back byte for byte.
func TestNovaEphemeralDisksBackUpAndRestore(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "names"}))
	p.startConsumer()
	p.startPublisherDaemon()
	ctx := context.Background()
	r := mrand.New(mrand.NewPCG(30, 30))
	const size = 8*mib + 512
	uuid := testbed.UUID()
	for _, suffix := range []string{"_disk.local", "_disk.swap", "_disk.config", " a*b>c..d=2E~"} {
		img := ferry.ImageSpec{Pool: testbed.Pool, Image: uuid + suffix}
		if err := source.CreateImage(img, size); err != nil {
			t.Fatal(err)
		}
		cephtest.Write(t, source, img, 0, randomBytes(r, 3*mib))
		cephtest.Write(t, source, img, size-4096, randomBytes(r, 4096))
		p.backupNow(img) // checks the backup snapshot against the source's

		scribble(t, img, size, r, 8)
		ev := snapshot(t, img)
		if err := bus.PublishSnapshotEvent(ctx, p.pubConn, ev); err != nil {
			t.Fatal(err)
		}
		st := waitState(t, p, img, func(s *ferry.ImageState) bool { return s.HasConfirmed(ev.Image.Snap) })
		if st.Status != ferry.StatusOK || st.Image != img {
			t.Fatalf("state of %s: %+v", img, st)
		}
		cephtest.RequireSameContent(t, source, ev.Image, backup, ev.Image)

		target := ferry.ImageSpec{Pool: testbed.Pool, Image: testbed.UUID() + suffix}
		rr, err := recovery.SendRestore(ctx, recovery.SendOptions{Backup: backup, Bus: p.consConn, Snapshot: ev.Image, Target: target}, nil)
		if err != nil {
			t.Fatalf("restore %s into %s: %v", ev.Image, target, err)
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		_, err = rr.Wait(wctx)
		cancel()
		rr.Close()
		if err != nil {
			t.Fatalf("restore %s into %s: %v", ev.Image, target, err)
		}
		cephtest.RequireSameContent(t, backup, ev.Image, source, target)
	}
}

// refusedCase is a manifest whose names the consumer must refuse.
type refusedCase struct {
	name    string
	m       ferry.Manifest
	subject string // "": the subject of m's image
	why     string // in the refusal
}

// TestBadNamesRefusedAtOnce: manifests whose names Ferry does not take, or
// whose subject names another image than their body, are refused on their
// first delivery (never retried), with an error log line naming the subject
// and the reason; where the image is one Ferry takes, its state says
// "refused: ..." for ferry status. A forged manifest for another image
// creates nothing at the backup site.
func TestBadNamesRefusedAtOnce(t *testing.T) {
	_, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "refused"}))
	logs := &testutil.LogBuffer{}
	p.consOpts.Log = slog.New(slog.NewJSONHandler(logs, nil))
	p.startConsumer()
	ctx := context.Background()

	good := ferry.ImageSpec{Pool: testbed.Pool, Image: testbed.ImageName(t, "ok") + ".local"}
	other := ferry.ImageSpec{Pool: testbed.Pool, Image: testbed.ImageName(t, "other")}
	manifest := func(img ferry.ImageSpec, from, to string) ferry.Manifest {
		img.Snap = to
		return ferry.Manifest{BackupID: "id/" + img.String(), Image: img, SourceImageID: "id", FromSnap: from, ToSnap: to,
			Size: mib, ChunkSize: 4 * mib, Created: time.Now()}
	}
	named := func(image string) ferry.Manifest {
		return manifest(ferry.ImageSpec{Pool: testbed.Pool, Image: image}, "", "ferry-1")
	}
	cases := []refusedCase{
		{name: "slash", m: named("a/b"), why: `image name "a/b": contains '/'`},
		{name: "at", m: named("a@b"), why: `image name "a@b": contains '@'`},
		{name: "NUL", m: named("a\x00b"), why: `U+0000`},
		{name: "escape", m: named("a\x1b[2Jb"), why: `image name "a\x1b[2Jb"`},
		{name: "newline in pool", m: manifest(ferry.ImageSpec{Pool: "p\nq", Image: "i"}, "", "s"), why: `pool name "p\nq"`},
		{name: "too long", m: named(strings.Repeat("x", ferry.MaxNameLen+1)), why: `256 bytes long`},
		{name: "empty", m: named(""), subject: bus.ManifestSubject + "." + testbed.Pool + ".x", why: `image name "": empty`},
		{name: "escape in snapshot", m: manifest(good, "", "ferry-\x1b]0;pwned\x07"), why: `snapshot name "ferry-\x1b]0;pwned\a"`},
		{name: "escape in base", m: manifest(good, "s\x1b", "ferry-2"), why: `snapshot name "s\x1b"`},
		{name: "snapshot differs", m: func() ferry.Manifest { m := manifest(good, "", "ferry-3"); m.ToSnap = "ferry-4"; return m }(),
			why: `and its to-snapshot "ferry-4" differ`},
		{name: "subject of another image", m: manifest(other, "", "ferry-5"), subject: bus.Subject(bus.ManifestSubject, good),
			why: `does not name the image "` + other.String() + `"`},
		{name: "image of 15 EiB", m: func() ferry.Manifest { m := manifest(good, "", "ferry-6"); m.Size = 15 << 60; return m }(),
			why: `the largest image Ferry creates`},
	}
	for i, c := range cases {
		subject := c.subject
		if subject == "" {
			subject = bus.Subject(bus.ManifestSubject, c.m.Image)
		}
		cases[i].subject = subject
		if _, err := p.pubConn.Backup.Publish(ctx, subject, mustJSON(t, c.m)); err != nil {
			t.Fatalf("%s: publish on %q: %v", c.name, subject, err)
		}
	}

	// Every manifest is answered on its first delivery.
	info := waitDone(t, p.consConn.Backup, bus.ManifestStream, bus.ConsumerDurable)
	if info.NumRedelivered != 0 || info.Delivered.Consumer != uint64(len(cases)) {
		t.Fatalf("%d manifests delivered %d times, %d redelivered: want each once", len(cases), info.Delivered.Consumer, info.NumRedelivered)
	}
	refusals := map[string][]string{} // subject -> errors
	for _, rec := range logRecords(t, logs) {
		if rec.Msg != "manifest refused; dropping it" {
			t.Errorf("log line %+v: want only refusals", rec)
			continue
		}
		refusals[rec.Subject] = append(refusals[rec.Subject], rec.Error)
	}
	for _, c := range cases {
		if !slices.ContainsFunc(refusals[c.subject], func(why string) bool {
			return strings.HasPrefix(why, "refused: ") && strings.Contains(why, c.why)
		}) {
			t.Errorf("%s: refusals on its subject %q, want one saying %s", c.name, refusals[c.subject], c.why)
		}
	}

	// ferry status shows the refusals of images Ferry takes.
	book, err := state.Open(ctx, p.consConn.Backup)
	if err != nil {
		t.Fatal(err)
	}
	st, err := book.Get(ctx, good)
	if err != nil || st == nil || st.Status != ferry.StatusFailed || !strings.HasPrefix(st.LastError, "refused: ") {
		t.Fatalf("state of %s: %+v, %v; want failed, refused", good, st, err)
	}
	if st, err := book.Get(ctx, other); err != nil || st == nil || !strings.Contains(st.LastError, "does not name the image") {
		t.Fatalf("state of %s: %+v, %v; want the refusal", other, st, err)
	}
	if _, err := backup.Info(other); err == nil {
		t.Fatalf("a manifest refused for its subject created %s at the backup site", other)
	}
}

// TestBadSnapshotEventsRefusedAtOnce: the publisher daemon refuses snapshot
// events whose names Ferry does not take, or whose subject names another
// image, on their first delivery, and sends nothing for them.
func TestBadSnapshotEventsRefusedAtOnce(t *testing.T) {
	source, _ := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "refused-events"}))
	logs := p.startLoggedPublisherDaemon()
	ctx := context.Background()

	img := cephtest.Image(t, source, "real", mib)
	ev := snapshot(t, img)
	elsewhere := ferry.ImageSpec{Pool: testbed.Pool, Image: testbed.ImageName(t, "elsewhere")}
	events := map[string]ferry.SnapshotEvent{ // subject -> event
		bus.Subject(bus.SnapshotSubject, elsewhere): ev, // the subject names another image
	}
	for _, name := range []string{"a/b", "a\x00b", "a\x1b[31mb", "a\u202eb", strings.Repeat("y", 300)} {
		bad := ev
		bad.Image.Image = name
		events[bus.Subject(bus.SnapshotSubject, bad.Image)] = bad
	}
	for subject, e := range events {
		msg := nats.NewMsg(subject)
		msg.Data = mustJSON(t, e)
		if _, err := p.pubConn.Source.PublishMsg(ctx, msg); err != nil {
			t.Fatalf("publish on %q: %v", subject, err)
		}
	}
	info := waitDone(t, p.pubConn.Source, bus.SnapshotStream, bus.PublisherDurable)
	if info.NumRedelivered != 0 {
		t.Fatalf("%d events redelivered: want each once", info.NumRedelivered)
	}
	refused := 0
	for _, rec := range logRecords(t, logs) {
		if _, ours := events[rec.Subject]; rec.Msg != "snapshot event refused; dropping it" || !ours || !strings.HasPrefix(rec.Error, "refused: ") {
			t.Errorf("log line %+v: want only refusals of the events sent", rec)
			continue
		}
		refused++
	}
	if refused != len(events) {
		t.Errorf("%d refusals logged for %d events", refused, len(events))
	}
	book, err := state.Open(ctx, p.consConn.Backup)
	if err != nil {
		t.Fatal(err)
	}
	manifests, err := p.consConn.Backup.Stream(ctx, bus.ManifestStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := manifests.CachedInfo().State.Msgs; n != 0 {
		t.Fatalf("%d manifests sent for refused events", n)
	}
	if st, err := book.Get(ctx, img); err != nil || st != nil {
		t.Fatalf("state of %s: %+v, %v; want none", img, st, err)
	}
}

// waitDone waits until the daemon's durable consumer of stream exists, has
// delivered every message and has none waiting for an ack (a refusal
// terminates its message).
func waitDone(t *testing.T, js jetstream.JetStream, stream, durable string) *jetstream.ConsumerInfo {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute)
	for {
		cons, err := js.Consumer(ctx, stream, durable)
		var info *jetstream.ConsumerInfo
		if err == nil {
			info, err = cons.Info(ctx)
		}
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Fatal(err)
		}
		if info != nil && info.NumPending == 0 && info.NumAckPending == 0 {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("messages still pending after a minute: %+v", info)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type logRecord struct{ Msg, Subject, Error string }

func logRecords(t *testing.T, logs *testutil.LogBuffer) []logRecord {
	t.Helper()
	var recs []logRecord
	for _, line := range logs.Lines() {
		if line == "" {
			continue
		}
		var rec logRecord
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if strings.HasPrefix(rec.Msg, "messages are not authenticated") {
			continue // the daemons' warning at start: these tests run without keys
		}
		recs = append(recs, rec)
	}
	return recs
}

// TestForeignResultsAndRestoreJobsRefused: the publisher daemon acts on
// backup results (removing the source snapshot of a backup given up) and
// restore jobs (writing into a source image) only when the subject names
// the image the body acts on. A failure sent on another image's subject
// used to remove the snapshot of a backup on its way.
func TestForeignResultsAndRestoreJobsRefused(t *testing.T) {
	source, _ := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: "foreign"}))
	logs := p.startLoggedPublisherDaemon()
	ctx := context.Background()
	waitDone(t, p.consConn.Backup, bus.ResultStream, bus.PrunerDurable) // it delivers only what comes after it

	img := cephtest.Image(t, source, "inflight", mib)
	inFlight := snapshot(t, img).Image // a backup on its way: nothing confirmed it
	elsewhere := ferry.ImageSpec{Pool: testbed.Pool, Image: testbed.ImageName(t, "elsewhere")}
	publish := func(subject string, v any) {
		if _, err := p.consConn.Backup.Publish(ctx, subject, mustJSON(t, v)); err != nil {
			t.Fatal(err)
		}
	}
	publish(bus.Subject(bus.FailedSubject, elsewhere), ferry.BackupResult{Kind: ferry.ResultGivenUp, BackupID: "forged", Image: inFlight, Error: "given up", Time: time.Now()})
	publish(bus.Subject(bus.RestoreSubject, elsewhere), ferry.RestoreJob{ID: "forged", Snapshot: inFlight, Target: img, Size: mib, FeedSeq: 1, FeedAttempt: "forged", Created: time.Now()})
	waitDone(t, p.consConn.Backup, bus.ResultStream, bus.PrunerDurable)
	waitDone(t, p.consConn.Backup, bus.RestoreStream, bus.RestorerDurable)

	if snaps := cephtest.SnapshotNames(t, source, img); !slices.Contains(snaps, inFlight.Snap) {
		t.Fatalf("a failure sent on %s removed %s (left %v)", elsewhere, inFlight, snaps)
	}
	results, err := p.consConn.Backup.Stream(ctx, bus.ResultStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := results.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("%d results, want only the forged failure: the refused job has no outcome", n)
	}
	want := map[string]bool{"backup result dropped; nothing done": true, "restore job refused; dropping it": true}
	for _, rec := range logRecords(t, logs) {
		if !want[rec.Msg] || !strings.Contains(rec.Error, "does not name the image") {
			t.Errorf("log line %+v: want the refusals only", rec)
		}
		delete(want, rec.Msg)
	}
	if len(want) != 0 {
		t.Errorf("not logged: %v", want)
	}
}

// startLoggedPublisherDaemon runs the publisher daemon with its log lines
// (JSON) kept for the test.
func (p *pipeline) startLoggedPublisherDaemon() *testutil.LogBuffer {
	p.t.Helper()
	source, _ := cephtest.Sites(p.t)
	logs := &testutil.LogBuffer{}
	pub, err := publisher.New(context.Background(), source, p.pubConn, publisher.Options{Log: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		p.t.Fatal(err)
	}
	p.pub = pub
	p.startPublisherDaemon()
	return logs
}
