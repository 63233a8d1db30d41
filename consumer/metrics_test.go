package consumer_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/ferry-dr/ferry/internal/testutil"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/consumer"
	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/metrics"
	"github.com/ferry-dr/ferry/internal/state"
	"github.com/ferry-dr/ferry/publisher"
	"github.com/nats-io/nats.go/jetstream"
)

// TestMetrics runs a full and an incremental backup through a publisher and
// a consumer that each serve /metrics, scrapes both over HTTP, and checks
// that the counters moved by exactly what the manifests report, that the
// recovery point comes from the state bucket, and that JetStream lag and
// redeliveries show up.
func TestMetrics(t *testing.T) {
	source, _ := cephtest.Sites(t)
	srv := startServer(t, bus.ServerOptions{Name: "metrics"})
	p := newPipeline(t, srv)
	pubMetrics := metrics.New(p.pubConn, metrics.Role{Name: metrics.RolePublisher, Reasons: publisher.Reasons()})
	consMetrics := metrics.New(p.consConn, metrics.Role{Name: metrics.RoleConsumer, Reasons: consumer.Reasons()})
	pubURL, consURL := serveMetrics(t, pubMetrics), serveMetrics(t, consMetrics)
	logs := &testutil.LogBuffer{}
	jsonLog := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	pub, err := publisher.New(context.Background(), source, p.pubConn, publisher.Options{Log: jsonLog, Observer: pubMetrics})
	if err != nil {
		t.Fatal(err)
	}
	p.pub = pub
	p.consOpts.Observer = consMetrics
	p.consOpts.Log = jsonLog
	p.startConsumer()

	r := rand.New(rand.NewPCG(7, 7))
	const size = 24 * mib
	img := cephtest.Image(t, source, "metrics", size)
	block := randomBytes(r, 4*mib)
	cephtest.Write(t, source, img, 0, block)
	cephtest.Write(t, source, img, 8*mib, block) // the same chunk twice: deduplicated
	cephtest.Write(t, source, img, 16*mib, make([]byte, 2*mib))
	cephtest.Write(t, source, img, 17*mib, []byte(strings.Repeat("compressible ", 4096)))
	started := time.Now()
	full, _ := p.backupNow(img)
	scribble(t, img, size, r, 10)
	incr, _ := p.backupNow(img)
	if full.Stats.ChunksSent >= full.Stats.Chunks {
		t.Fatalf("the test needs a deduplicated chunk: %+v", full.Stats)
	}

	pm := scrape(t, pubURL)
	sum := func(f func(s ferry.BackupStats) uint64) float64 { return float64(f(full.Stats) + f(incr.Stats)) }
	pm.require(t, "ferry_backups_total", `kind="full",role="publisher"`, 1)
	pm.require(t, "ferry_backups_total", `kind="incremental",role="publisher"`, 1)
	pm.require(t, "ferry_backup_duration_seconds_count", `role="publisher"`, 2)
	pm.require(t, "ferry_backup_read_bytes_total", "", sum(func(s ferry.BackupStats) uint64 { return s.DataBytes }))
	pm.require(t, "ferry_backup_changed_bytes_total", "", sum(func(s ferry.BackupStats) uint64 { return s.ChangedBytes }))
	pm.require(t, "ferry_backup_bytes_sent_total", "", sum(func(s ferry.BackupStats) uint64 { return s.BytesSent }))
	pm.require(t, "ferry_backup_chunk_raw_bytes_sent_total", "", sum(func(s ferry.BackupStats) uint64 { return s.RawBytesSent }))
	pm.require(t, "ferry_backup_extent_bytes_sent_total", "", sum(func(s ferry.BackupStats) uint64 { return s.ExtentBytesSent }))
	pm.require(t, "ferry_backup_chunks_total", "", sum(func(s ferry.BackupStats) uint64 { return uint64(s.Chunks) }))
	pm.require(t, "ferry_backup_chunks_sent_total", "", sum(func(s ferry.BackupStats) uint64 { return uint64(s.ChunksSent) }))
	// The ratios the dashboard derives: dedup > 1 (one chunk was there twice),
	// compression > 1 (zeros and text compress).
	if dedup := pm.get(t, "ferry_backup_read_bytes_total", "") / pm.get(t, "ferry_backup_chunk_raw_bytes_sent_total", ""); dedup <= 1 {
		t.Errorf("dedup ratio %.2f", dedup)
	}
	if compr := pm.get(t, "ferry_backup_chunk_raw_bytes_sent_total", "") /
		(pm.get(t, "ferry_backup_bytes_sent_total", "") - pm.get(t, "ferry_backup_extent_bytes_sent_total", "")); compr <= 1 {
		t.Errorf("compression ratio %.2f", compr)
	}

	cm := scrape(t, consURL)
	cm.require(t, "ferry_backups_total", `kind="full",role="consumer"`, 1)
	cm.require(t, "ferry_backups_total", `kind="incremental",role="consumer"`, 1)
	cm.require(t, "ferry_backup_duration_seconds_count", `role="consumer"`, 2)
	cm.require(t, "ferry_backup_applied_bytes_total", "", sum(func(s ferry.BackupStats) uint64 { return s.DataBytes }))
	cm.require(t, "ferry_jetstream_up", `domain="backup"`, 1)
	cm.require(t, "ferry_state_up", "", 1)
	cm.require(t, "ferry_consumer_active", "", 1)
	pm.require(t, "ferry_jetstream_up", `domain="source"`, 1)
	pm.require(t, "ferry_peer_reachable", `role="publisher"`, 1)
	requireOneOwner(t, pm, cm)

	// The recovery point is the state bucket's LastSuccess.
	book, err := state.Open(context.Background(), p.consConn.Backup)
	if err != nil {
		t.Fatal(err)
	}
	st, err := book.Get(context.Background(), img)
	if err != nil || st == nil {
		t.Fatalf("state of %s: %v", img, err)
	}
	imgLabel := `image="` + img.String() + `"`
	cm.require(t, "ferry_image_last_success_timestamp_seconds", imgLabel, float64(st.LastSuccess.UnixNano())/1e9)
	if rpo := cm.get(t, "ferry_image_rpo_seconds", imgLabel); rpo < 0 || rpo > time.Since(started).Seconds() {
		t.Errorf("rpo %.1f s, but the last backup is at most %.1f s old", rpo, time.Since(started).Seconds())
	}
	cm.require(t, "ferry_image_failing", imgLabel, 0)
	for _, r := range consumer.Reasons() {
		// At zero before any give-up, so that the first one is an increase.
		cm.require(t, "ferry_backups_given_up_total", imgLabel+`,reason="`+r+`"`, 0)
	}
	// Everything was applied: no backlog; the streams hold what was sent.
	cm.require(t, "ferry_jetstream_consumer_pending_messages", `consumer="consumer",stream="FERRY_MANIFESTS"`, 0)
	cm.require(t, "ferry_jetstream_consumer_ack_pending_messages", `consumer="consumer",stream="FERRY_MANIFESTS"`, 0)
	cm.require(t, "ferry_jetstream_stream_messages", `domain="backup",stream="FERRY_MANIFESTS"`, 0)
	if n := cm.get(t, "ferry_jetstream_stream_messages", `domain="backup",stream="FERRY_CHUNKS"`); n < float64(full.Stats.ChunksSent+incr.Stats.ChunksSent) {
		t.Errorf("FERRY_CHUNKS holds %v messages, fewer than the %d chunks sent", n, full.Stats.ChunksSent+incr.Stats.ChunksSent)
	}

	// Failures by reason. The publisher: an image that does not exist.
	gone := ferry.ImageSpec{Pool: img.Pool, Image: img.Image + "-gone", Snap: "ferry-x"}
	if _, err := p.pub.Backup(context.Background(), ferry.SnapshotEvent{Image: gone, Created: time.Now()}, nil); err == nil {
		t.Fatal("backup of a missing image succeeded")
	}
	scrape(t, pubURL).require(t, "ferry_backup_failures_total", `reason="not_found",role="publisher"`, 1)

	// The consumer: a manifest whose base never came, past its wait (given up
	// at once), and one still waiting (redelivered until the test ends).
	orphan := func(name string, created time.Time) {
		m := ferry.Manifest{BackupID: "id/" + name, Image: ferry.ImageSpec{Pool: img.Pool, Image: name, Snap: "ferry-b"},
			SourceImageID: "id", FromSnap: "ferry-a", ToSnap: "ferry-b", Size: mib, ChunkSize: 4 * mib, Created: created}
		if _, err := p.pubConn.Backup.Publish(context.Background(), bus.Subject(bus.ManifestSubject, m.Image), mustJSON(t, m), jetstream.WithMsgID(m.BackupID)); err != nil {
			t.Fatal(err)
		}
	}
	orphan(img.Image+"-late", time.Now().Add(-2*p.consOpts.BaseWait))
	orphan(img.Image+"-waiting", time.Now())
	lateLabel := `image="` + img.Pool + "/" + img.Image + `-late"`
	cm = scrapeUntil(t, consURL, func(m scraped) bool {
		return m.has("ferry_backups_given_up_total", lateLabel+`,reason="base_missing"`) &&
			m.has("ferry_image_failing", lateLabel) &&
			m.value("ferry_jetstream_consumer_redelivered_messages", `consumer="consumer",stream="FERRY_MANIFESTS"`) >= 1
	})
	cm.require(t, "ferry_backup_failures_total", `reason="base_missing",role="consumer"`, 1)
	cm.require(t, "ferry_backups_given_up_total", lateLabel+`,reason="base_missing"`, 1)
	cm.require(t, "ferry_backups_given_up_total", lateLabel+`,reason="refused"`, 0)
	cm.require(t, "ferry_image_failing", lateLabel, 1)
	cm.require(t, "ferry_jetstream_consumer_pending_messages", `consumer="consumer",stream="FERRY_MANIFESTS"`, 0)
	cm.require(t, "ferry_jetstream_consumer_ack_pending_messages", `consumer="consumer",stream="FERRY_MANIFESTS"`, 1)

	requireBackupLogFields(t, logs.Lines())
	requireOneOwner(t, scrape(t, pubURL), cm)
	for _, url := range []string{pubURL, consURL} {
		testutil.PromtoolCheckMetrics(t, url, scrapeText(t, url))
	}
}

// requireOneOwner: no ferry_* series is exported by both daemons, so that
// sums over both scrapes count each fact once. The series of work done
// carry the daemon's role.
func requireOneOwner(t *testing.T, pub, cons scraped) {
	t.Helper()
	for s := range pub {
		// ferry_build_info describes each process, which the scrape's
		// instance label tells apart: summed, it counts processes.
		if strings.HasPrefix(s, "ferry_build_info") {
			if !cons.has(s, "") {
				t.Errorf("%s is exported by the publisher only; every process exports its build", s)
			}
			continue
		}
		if strings.HasPrefix(s, "ferry_") && cons.has(s, "") {
			t.Errorf("%s is exported by both the publisher and the consumer", s)
		}
	}
}

// requireBackupLogFields: every log line about one backup names its image,
// snapshot and backup id, so an operator can follow one backup through both
// daemons' logs.
func requireBackupLogFields(t *testing.T, lines []string) {
	t.Helper()
	notAboutOneBackup := map[string]bool{"pruned source snapshot": true}
	checked := map[string]int{}
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		msg, _ := rec["msg"].(string)
		if _, ok := rec["image"]; !ok || notAboutOneBackup[msg] {
			continue
		}
		for _, key := range []string{"snapshot", "backup_id"} {
			if v, _ := rec[key].(string); v == "" {
				t.Errorf("log line %q lacks %s", line, key)
			}
		}
		if img, _ := rec["image"].(string); strings.Contains(img, "@") {
			t.Errorf("log line %q: image carries the snapshot; it belongs in snapshot=", line)
		}
		checked[msg]++
	}
	for _, msg := range []string{"backup starting", "backup sent", "applying backup", "backup waits for its base", "backup given up"} {
		if checked[msg] == 0 {
			t.Errorf("no %q line was logged (checked: %v)", msg, checked)
		}
	}
}

func serveMetrics(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	srv, err := m.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("metrics server: %v", err)
		}
	})
	return "http://" + srv.Addr() + "/metrics"
}

// scraped maps `name{labels}` (labels as Prometheus prints them, sorted) to values.
type scraped map[string]float64

// scrapeText is what url serves, in the Prometheus text format.
func scrapeText(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, body)
	}
	return body
}

func scrape(t *testing.T, url string) scraped {
	t.Helper()
	out := scraped{}
	sc := bufio.NewScanner(bytes.NewReader(scrapeText(t, url)))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func scrapeUntil(t *testing.T, url string, ok func(scraped) bool) scraped {
	t.Helper()
	var m scraped
	testutil.CheckFor(t, time.Minute, 100*time.Millisecond, func() error {
		if m = scrape(t, url); !ok(m) {
			return fmt.Errorf("metrics not in the expected state:\n%v", m)
		}
		return nil
	})
	return m
}

func series(name, labels string) string {
	if labels == "" {
		return name
	}
	return name + "{" + labels + "}"
}

func (m scraped) has(name, labels string) bool { _, ok := m[series(name, labels)]; return ok }

func (m scraped) value(name, labels string) float64 { return m[series(name, labels)] }

func (m scraped) get(t *testing.T, name, labels string) float64 {
	t.Helper()
	v, ok := m[series(name, labels)]
	if !ok {
		t.Fatalf("no series %s", series(name, labels))
	}
	return v
}

func (m scraped) require(t *testing.T, name, labels string, want float64) {
	t.Helper()
	if got := m.get(t, name, labels); got != want {
		t.Errorf("%s = %v, want %v", series(name, labels), got, want)
	}
}
