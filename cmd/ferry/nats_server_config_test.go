package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/testutil"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestNATSServerFromConfig: ferry nats-server takes its listen address and
// domain from the nats_server section, and its store from systemd's
// $STATE_DIRECTORY when the section names none.
func TestNATSServerFromConfig(t *testing.T) {
	port := testutil.FreePort(t)
	store := t.TempDir()
	t.Setenv("STATE_DIRECTORY", store)
	path := writeConfig(t, fmt.Sprintf("nats_server:\n  listen: 127.0.0.1:%d\n  domain: fromfile\n", port))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root := newRootCommand()
	root.SetArgs([]string{"nats-server", "--config", path})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()

	var nc *nats.Conn
	testutil.CheckFor(t, 20*time.Second, 50*time.Millisecond, func() error {
		select {
		case err := <-done:
			t.Fatalf("nats-server ended: %v", err)
		default:
		}
		var err error
		nc, err = nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", port))
		return err
	})
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	info, err := js.AccountInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Domain != "fromfile" {
		t.Errorf("JetStream domain %q, want fromfile (nats_server.domain)", info.Domain)
	}
	if _, err := os.Stat(filepath.Join(store, "jetstream")); err != nil {
		t.Errorf("the store is not in $STATE_DIRECTORY: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("nats-server on shutdown: %v", err)
	}
}
