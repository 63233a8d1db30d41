package siteinit_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/health"
	"github.com/ferry-dr/ferry/internal/siteinit/siteinittest"
	"github.com/ferry-dr/ferry/internal/testutil"
	"github.com/nats-io/nats.go/jetstream"
)

// TestDaemonsKeepHealthRecords: with the identities ferry init makes, the
// publisher keeps its health record at the source site (and asks the
// backup site whether it answers), the consumer its own at the backup
// site, and the operator reads both from either site; the servers refuse
// none of it.
func TestDaemonsKeepHealthRecords(t *testing.T) {
	sites := siteinittest.Start(t, false)
	pub, cons := setUpStreams(t, sites)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	beat := func(js jetstream.JetStream, o health.Options) {
		o.Interval, o.Log = 100*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil))
		go func() { health.Beat(ctx, js, o); done <- struct{}{} }()
	}
	beat(pub.Source, health.Options{Role: "publisher", Other: pub.Backup, OtherName: "the backup site"})
	beat(cons.Backup, health.Options{Role: "consumer", Work: func() []health.Work { return nil }})
	defer func() { stop(); <-done; <-done }()
	for _, site := range []string{"backup", "source"} {
		op := operatorAt(t, sites, site)
		testutil.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
			r, err := health.Read(ctx, op, health.ReadOptions{})
			if err != nil {
				return err
			}
			running := map[string]bool{}
			for _, d := range r.Daemons {
				running[d.Role] = d.State == "running" && d.Unreachable == nil
			}
			if !running["publisher"] || !running["consumer"] || len(r.Unreachable) > 0 {
				return fmt.Errorf("at the %s site, the daemons read %+v, unreachable %+v", site, r.Daemons, r.Unreachable)
			}
			return nil
		})
	}
	if v := sites.Violations(); len(v) > 0 {
		t.Fatalf("the servers refused: %q", v)
	}
}

// operatorAt connects the operator identity to the server of site; the end
// of the test closes the connection.
func operatorAt(t *testing.T, sites *siteinittest.Sites, site string) *bus.Conn {
	t.Helper()
	o := sites.ConnOptions(bus.RoleOperator)
	o.URL = sites.URL(site)
	op, err := bus.Connect(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(op.Close)
	return op
}
