package siteinit_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/config"
	"github.com/ferry-dr/ferry/internal/sign"
	"github.com/ferry-dr/ferry/internal/siteinit"
	"github.com/ferry-dr/ferry/internal/siteinit/siteinittest"
)

// TestGenerateKeepsKeysPrivateAndFilesIntact: private keys are 0600, and a
// second run into the same directory fails before it writes anything.
func TestGenerateKeepsKeysPrivateAndFilesIntact(t *testing.T) {
	dir := t.TempDir()
	o := siteinit.Options{Out: dir, SourceHost: "src.example", BackupHost: "dr.example"}
	names, err := siteinit.Generate(o)
	if err != nil {
		t.Fatal(err)
	}
	keys := 0
	for _, n := range names {
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(n, ".key") {
			keys++
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v, want 0600", n, fi.Mode().Perm())
			}
		}
	}
	// CA, two servers, the leafnode, each role's certificate, and the
	// signing keys of the publisher, the consumer and the restore identity.
	if want := 4 + len(bus.Roles()) + 3; keys != want {
		t.Errorf("%d private keys written, want %d: %v", keys, want, names)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "ca.key"))
	if err := os.Remove(filepath.Join(dir, "agent.yaml")); err != nil {
		t.Fatal(err)
	}
	_, err = siteinit.Generate(o)
	if err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Fatalf("second run into the same directory: %v, want a refusal", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "ca.key"))
	if string(before) != string(after) {
		t.Fatal("a refused run replaced the CA key")
	}
	if _, err := os.Stat(filepath.Join(dir, "agent.yaml")); err == nil {
		t.Fatal("a refused run wrote a file")
	}
}

// TestUntrustedConnectionsRefused: a client that does not trust the
// server's CA, one without a client certificate, one whose certificate
// another CA issued, and one whose certificate names no role (the
// leafnode's) are all refused, each with an error that says what to
// check.
func TestUntrustedConnectionsRefused(t *testing.T) {
	sites := siteinittest.Start(t, false)
	other := t.TempDir()
	if _, err := siteinit.Generate(siteinit.Options{Out: other, SourceHost: "127.0.0.1", BackupHost: "localhost"}); err != nil {
		t.Fatal(err)
	}
	good := sites.ConnOptions(bus.RoleConsumer)
	for _, c := range []struct {
		name string
		edit func(o *bus.ConnOptions)
		want string
	}{
		{"wrong CA", func(o *bus.ConnOptions) { o.CA = filepath.Join(other, "ca.crt") }, "--nats-ca"},
		{"no client certificate", func(o *bus.ConnOptions) { o.Cert, o.Key = "", "" }, "client certificate issued by the CA"},
		{"certificate of another CA", func(o *bus.ConnOptions) {
			o.Cert, o.Key = filepath.Join(other, "consumer.crt"), filepath.Join(other, "consumer.key")
		}, "client certificate issued by the CA"},
		{"certificate of no role", func(o *bus.ConnOptions) {
			o.Cert, o.Key = filepath.Join(sites.Dir, "source-leaf.crt"), filepath.Join(sites.Dir, "source-leaf.key")
		}, "did not accept this identity"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := good
			c.edit(&o)
			conn, err := bus.Connect(o)
			if err == nil {
				conn.Close()
				t.Fatal("connected")
			}
			t.Log(err)
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not point at %s", err, c.want)
			}
		})
	}
	// The same options with the right files connect.
	conn, err := bus.Connect(good)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
}

// TestGeneratedFilesAsTheHostsSeeThem: with --paths, every file names the
// others where they will be on the hosts, and each role's file is a valid
// Ferry configuration for its site that names its own signing key and no
// other role's, and trusts exactly the public keys of the roles it takes
// orders from.
func TestGeneratedFilesAsTheHostsSeeThem(t *testing.T) {
	dir := t.TempDir()
	if _, err := siteinit.Generate(siteinit.Options{Out: dir, Paths: "/etc/ferry/tls", SourceHost: "src.example", BackupHost: "dr.example", BackupPort: 4333}); err != nil {
		t.Fatal(err)
	}
	for _, site := range []string{"source", "backup"} {
		raw, err := os.ReadFile(filepath.Join(dir, siteinit.SiteConfig(site)))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(raw), `ca_file: "/etc/ferry/tls/ca.crt"`) || strings.Contains(string(raw), dir) {
			t.Errorf("%s names its files outside /etc/ferry/tls:\n%s", siteinit.SiteConfig(site), raw)
		}
	}
	seeds, public := map[bus.Role]string{}, map[bus.Role]string{}
	for _, r := range []bus.Role{bus.RolePublisher, bus.RoleConsumer, bus.RoleRestore} {
		raw, err := os.ReadFile(filepath.Join(dir, siteinit.SigningKey(r)))
		if err != nil {
			t.Fatal(err)
		}
		seeds[r] = strings.TrimSpace(string(raw))
		k, err := sign.ParseSeed(seeds[r])
		if err != nil {
			t.Fatalf("%s: %v", siteinit.SigningKey(r), err)
		}
		public[r] = k.Public()
	}
	wantKeys := map[bus.Role]roleKeys{
		bus.RolePublisher: {pubSigning: "/etc/ferry/tls/publisher-signing.key", pubTrusted: public[bus.RoleConsumer], pubRestore: public[bus.RoleRestore]},
		bus.RoleConsumer:  {consSigning: "/etc/ferry/tls/consumer-signing.key", consTrusted: public[bus.RolePublisher]},
		bus.RoleRestore:   {consRestore: "/etc/ferry/tls/restore-signing.key", consTrusted: public[bus.RolePublisher]},
	}
	for _, r := range bus.Roles() {
		l, err := config.Load(filepath.Join(dir, siteinit.RoleConfig(r)), nil)
		if err != nil {
			t.Fatalf("%s: %v", siteinit.RoleConfig(r), err)
		}
		wantURL := "tls://dr.example:4333"
		if r == bus.RoleAgent || r == bus.RolePublisher {
			wantURL = "tls://src.example:4222"
		}
		if l.NATS.URL != wantURL || l.NATS.Cert != "/etc/ferry/tls/"+string(r)+".crt" || l.NATS.Key != "/etc/ferry/tls/"+string(r)+".key" ||
			l.NATS.CA != "/etc/ferry/tls/ca.crt" || l.NATS.SourceDomain != "source" || l.NATS.BackupDomain != "backup" {
			t.Errorf("%s: %+v", siteinit.RoleConfig(r), l.NATS)
		}
		got := roleKeys{l.Publisher.SigningKey, l.Publisher.TrustedKeys, l.Publisher.RestoreKeys,
			l.Consumer.SigningKey, l.Consumer.TrustedKeys, l.Consumer.RestoreKey}
		if got != wantKeys[r] { // the agent and the operator: none
			t.Errorf("%s: signing keys and trust %+v, want %+v", siteinit.RoleConfig(r), got, wantKeys[r])
		}
		raw, err := os.ReadFile(filepath.Join(dir, siteinit.RoleConfig(r)))
		if err != nil {
			t.Fatal(err)
		}
		for signer, seed := range seeds {
			if strings.Contains(string(raw), seed) || signer != r && strings.Contains(string(raw), siteinit.SigningKey(signer)) {
				t.Errorf("%s names %s's private signing key", siteinit.RoleConfig(r), signer)
			}
		}
	}
}

// roleKeys are the signing keys and trusted keys of a Ferry configuration.
type roleKeys struct {
	pubSigning, pubTrusted, pubRestore, consSigning, consTrusted, consRestore string
}
