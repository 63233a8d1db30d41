// Package bustest starts JetStream for tests. It is for tests only; nothing
// that ships imports it.
package bustest

import (
	"context"
	"testing"

	"github.com/ferry-dr/ferry/internal/bus"
)

// Conn starts an in-process JetStream server with its store in a test
// directory, sets up both sites' streams on it and returns a connection.
// Both are stopped when the test ends.
func Conn(t testing.TB) *bus.Conn {
	t.Helper()
	srv, err := bus.StartServer(bus.ServerOptions{Name: "test", StoreDir: t.TempDir(), InProcess: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	c, err := bus.Connect(bus.ConnOptions{InProcess: srv, Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx := context.Background()
	if err := bus.SetupSource(ctx, c.Source, bus.DefaultRetention); err != nil {
		t.Fatal(err)
	}
	if err := bus.SetupBackup(ctx, c.Backup, bus.DefaultRetention); err != nil {
		t.Fatal(err)
	}
	return c
}
