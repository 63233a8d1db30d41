package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/state"
	"github.com/ferry-dr/ferry/internal/testutil"
)

// TestSiteFiguresFollowTheLock: only the consumer that holds the backup
// site's lock exports the image gauges and the backup site's JetStream
// figures; a standby exports ferry_consumer_active 0 and its given-up
// counters at zero for the images the state bucket knows.
func TestSiteFiguresFollowTheLock(t *testing.T) {
	conn := bustest.Conn(t)
	ctx := context.Background()
	book, err := state.Open(ctx, conn.Backup)
	if err != nil {
		t.Fatal(err)
	}
	img := ferry.ImageSpec{Pool: "rbd", Image: "vm"}
	if err := book.Put(ctx, &ferry.ImageState{Image: img, LastSuccess: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	kv, err := conn.Backup.KeyValue(ctx, bus.LockBucket)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	lock := func(pid int) {
		raw, _ := json.Marshal(map[string]any{"holder": "a consumer", "since": time.Now().UTC(), "host": host, "pid": pid})
		if _, err := kv.Put(ctx, bus.ConsumerLock, raw); err != nil {
			t.Fatal(err)
		}
	}
	m := New(conn, Role{Name: RoleConsumer, Reasons: []string{"refused"}})
	standby := func(why string) {
		t.Helper()
		g := gather(t, m)
		g.require(t, why, `ferry_consumer_active`, 0)
		g.require(t, why, `ferry_backups_given_up_total{image="rbd/vm",reason="refused"}`, 0)
		for _, name := range []string{"ferry_image_rpo_seconds", "ferry_image_failing", "ferry_state_up", "ferry_jetstream_up"} {
			if g.has(name) {
				t.Errorf("%s: a consumer that does not hold the lock exports %s", why, name)
			}
		}
	}
	standby("no lock")
	lock(os.Getpid())
	g := gather(t, m)
	g.require(t, "holding the lock", `ferry_consumer_active`, 1)
	g.require(t, "holding the lock", `ferry_image_failing{image="rbd/vm"}`, 0)
	g.require(t, "holding the lock", `ferry_state_up`, 1)
	g.require(t, "holding the lock", `ferry_jetstream_up{domain="backup"}`, 1)
	if rpo := g[`ferry_image_rpo_seconds{image="rbd/vm"}`]; rpo < 3600 || rpo > 3700 {
		t.Errorf("rpo %.0f s, want an hour", rpo)
	}
	lock(os.Getpid() + 1)
	standby("another process holds the lock")
}

// TestPeerReachable: the publisher says whether the backup site answers
// (here its NATS server stops, the source site's stays up), and reads only
// its own site's JetStream.
func TestPeerReachable(t *testing.T) {
	leafPort := testutil.FreePort(t)
	backupSrv := bustest.Server(t, bus.ServerOptions{Name: "backup-site", Domain: "backup", LeafPort: leafPort})
	sourceSrv := bustest.Server(t, bus.ServerOptions{Name: "source-site", Domain: "source",
		LeafRemotes: []string{"nats-leaf://127.0.0.1:" + strconv.Itoa(leafPort)}})
	testutil.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if sourceSrv.NumLeafNodes() == 0 {
			return errors.New("leafnode connection between the sites did not come up")
		}
		return nil
	})
	conn := bustest.Connect(t, bus.ConnOptions{URL: sourceSrv.ClientURL(), SourceDomain: "source", BackupDomain: "backup"})
	if err := bus.SetupSource(context.Background(), conn.Source, bus.DefaultRetention); err != nil {
		t.Fatal(err)
	}
	m := New(conn, Role{Name: RolePublisher})
	g := gather(t, m)
	g.require(t, "link up", `ferry_peer_reachable{role="publisher"}`, 1)
	g.require(t, "link up", `ferry_jetstream_up{domain="source"}`, 1)
	g.require(t, "link up", `ferry_jetstream_stream_messages{domain="source",stream="FERRY_SNAPSHOTS"}`, 0)
	for s := range g {
		if strings.Contains(s, `domain="backup"`) || strings.HasPrefix(s, "ferry_image_") || strings.HasPrefix(s, "ferry_consumer_active") {
			t.Errorf("the publisher exports %s, which is the backup site's", s)
		}
	}
	backupSrv.Shutdown()
	backupSrv.WaitForShutdown()
	g = gather(t, m)
	g.require(t, "backup site down", `ferry_peer_reachable{role="publisher"}`, 0)
	g.require(t, "backup site down", `ferry_jetstream_up{domain="source"}`, 1)
}

// gathered maps `name{labels}` (labels sorted, as Prometheus prints them)
// to values.
type gathered map[string]float64

func gather(t *testing.T, m *Metrics) gathered {
	t.Helper()
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := gathered{}
	for _, f := range families {
		for _, mt := range f.GetMetric() {
			var labels []string
			for _, l := range mt.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := f.GetName()
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			out[key] = mt.GetGauge().GetValue() + mt.GetCounter().GetValue()
		}
	}
	return out
}

func (g gathered) has(name string) bool {
	for s := range g {
		if s == name || strings.HasPrefix(s, name+"{") {
			return true
		}
	}
	return false
}

func (g gathered) require(t *testing.T, when, series string, want float64) {
	t.Helper()
	got, ok := g[series]
	switch {
	case !ok:
		t.Errorf("%s: no series %s", when, series)
	case got != want:
		t.Errorf("%s: %s = %v, want %v", when, series, got, want)
	}
}
