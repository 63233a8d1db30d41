package bus

import (
	"context"
	"strings"
	"testing"
)

// TestConn starts an in-process JetStream server with its store in a test
// directory, sets up both sites' streams on it and returns a connection.
// Both are stopped when the test ends.
func TestConn(t testing.TB) *Conn {
	t.Helper()
	srv, err := StartServer(ServerOptions{Name: "test", StoreDir: t.TempDir(), InProcess: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	c, err := Connect(ConnOptions{InProcess: srv, Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx := context.Background()
	if err := SetupSource(ctx, c.Source, DefaultRetention); err != nil {
		t.Fatal(err)
	}
	if err := SetupBackup(ctx, c.Backup, DefaultRetention); err != nil {
		t.Fatal(err)
	}
	return c
}

// ClosedForGood are the ways a connection ends for good, for tests of what
// a daemon does then: its client closes it, or the server does for a
// protocol violation (a control line over its limit, as a subject with a
// 10 KB image name in it made).
var ClosedForGood = map[string]func(*Conn){
	"closed by the client": func(c *Conn) { c.NC.Close() },
	"closed by the server": func(c *Conn) {
		_ = c.NC.Publish(StateBucket+"."+strings.Repeat("x", 10<<10), nil)
	},
}
