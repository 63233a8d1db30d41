package bus

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLeafnodeListenHost: the leafnode port listens on its own host, not
// on the client port's.
func TestLeafnodeListenHost(t *testing.T) {
	opts, err := serverOptions(ServerOptions{Host: "127.0.0.1", Port: 4222, LeafHost: "0.0.0.0", LeafPort: 7422})
	if err != nil {
		t.Fatal(err)
	}
	if opts.LeafNode.Host != "0.0.0.0" || opts.Host != "127.0.0.1" {
		t.Fatalf("leafnode host %q, client host %q", opts.LeafNode.Host, opts.Host)
	}
}

// TestServerConfigStore: a configuration file without store_dir takes the
// store given beside it; with neither, or two different ones, the server
// does not start.
func TestServerConfigStore(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	bare := write("bare.conf", "listen: \"127.0.0.1:-1\"\njetstream { domain: \"site\" }\n")
	store := t.TempDir()
	s, err := StartServer(ServerOptions{Name: "config-test", ConfigFile: bare, StoreDir: store})
	if err != nil {
		t.Fatal(err)
	}
	got := s.JetStreamConfig().StoreDir
	s.Shutdown()
	s.WaitForShutdown()
	if !strings.HasPrefix(got, store) {
		t.Fatalf("store %s, want it under %s", got, store)
	}
	if _, err := StartServer(ServerOptions{Name: "config-test", ConfigFile: bare}); err == nil || !strings.Contains(err.Error(), "--store") {
		t.Fatalf("no store anywhere: %v", err)
	}
	named := write("named.conf", "listen: \"127.0.0.1:-1\"\njetstream { store_dir: \""+t.TempDir()+"\" }\n")
	if _, err := StartServer(ServerOptions{Name: "config-test", ConfigFile: named, StoreDir: store}); err == nil || !strings.Contains(err.Error(), "one place") {
		t.Fatalf("two stores: %v", err)
	}
	off := write("off.conf", "listen: \"127.0.0.1:-1\"\n")
	if _, err := StartServer(ServerOptions{Name: "config-test", ConfigFile: off, StoreDir: store}); err == nil || !strings.Contains(err.Error(), "JetStream is off") {
		t.Fatalf("no JetStream: %v", err)
	}
}
