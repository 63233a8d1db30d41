// Package bustest starts JetStream for tests. It is for tests only; nothing
// that ships imports it.
package bustest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/testutil"
	"github.com/nats-io/nats-server/v2/server"
)

// Server starts a JetStream server that the end of the test stops. Its
// store is in a test directory unless o names one, and it listens on a
// free loopback port unless o names a port or asks for in-process clients
// only.
func Server(t testing.TB, o bus.ServerOptions) *server.Server {
	t.Helper()
	if o.StoreDir == "" {
		o.StoreDir = t.TempDir()
	}
	if o.Port == 0 && !o.InProcess {
		o.Port = -1
	}
	s, err := bus.StartServer(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// Connect connects to a JetStream server; the end of the test closes the
// connection.
func Connect(t testing.TB, o bus.ConnOptions) *bus.Conn {
	t.Helper()
	c, err := bus.Connect(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Setup sets up both sites' streams and buckets on c's server.
func Setup(t testing.TB, c *bus.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := bus.SetupSource(ctx, c.Source, bus.DefaultRetention); err != nil {
		t.Fatal(err)
	}
	if err := bus.SetupBackup(ctx, c.Backup, bus.DefaultRetention); err != nil {
		t.Fatal(err)
	}
}

// Conn starts an in-process JetStream server with both sites' streams and
// returns a connection to it; the end of the test stops both.
func Conn(t testing.TB) *bus.Conn {
	t.Helper()
	srv := Server(t, bus.ServerOptions{Name: "test", InProcess: true})
	c := Connect(t, bus.ConnOptions{InProcess: srv, Name: t.Name()})
	Setup(t, c)
	return c
}

// ClosedForGood are the ways a connection ends for good, for tests of what
// a daemon does then: its client closes it, or the server does for a
// protocol violation (a control line over its limit, as a subject with a
// 10 KB image name in it made).
var ClosedForGood = map[string]func(*bus.Conn){
	"closed by the client": func(c *bus.Conn) { c.NC.Close() },
	"closed by the server": func(c *bus.Conn) {
		_ = c.NC.Publish(bus.StateBucket+"."+strings.Repeat("x", 10<<10), nil)
	},
}

// WaitLeaf waits until s has its leafnode connection to the other site.
func WaitLeaf(t testing.TB, s *server.Server) {
	t.Helper()
	testutil.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if s.NumLeafNodes() == 0 {
			return errors.New("leafnode connection between the sites did not come up")
		}
		return nil
	})
}
