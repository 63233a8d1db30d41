package bus

import (
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                       "nats://127.0.0.1:4222",
		"nats://ferry:s3cret@nats.example:4222":       "nats://REDACTED@nats.example:4222",
		"tls://TOKEN123@a:4222, nats://u:p@b:4222":    "tls://REDACTED@a:4222, nats://REDACTED@b:4222",
		"nats://u:p%zz@host:4222":                     "nats://REDACTED@host:4222", // not a valid URL
		"nats://user:pa@ss@host:4222/x":               "nats://REDACTED@host:4222/x",
		"nats-leaf://leaf:secret@backup.example:7422": "nats-leaf://REDACTED@backup.example:7422",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestConnectErrorHidesPassword: the error of a failed connection names
// the server but not the password in its URL.
func TestConnectErrorHidesPassword(t *testing.T) {
	_, err := Connect(ConnOptions{URL: "nats://ferry:s3cret@127.0.0.1:1", Name: "redaction test"})
	if err == nil {
		t.Fatal("connected to port 1")
	}
	if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("error %q: want the server named and the password left out", err)
	}
	_, err = StartServer(ServerOptions{Name: "redaction test", InProcess: true, StoreDir: t.TempDir(), LeafRemotes: []string{"nats-leaf://leaf:s3cret@bad host:7422"}})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("bad leafnode remote: %v, want an error without the password", err)
	}
}
