// Package siteinittest runs both sites' NATS servers from a setup that
// ferry init wrote, for tests. Nothing that ships imports it.
package siteinittest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/config"
	"github.com/ferry-dr/ferry/internal/sign"
	"github.com/ferry-dr/ferry/internal/siteinit"
	"github.com/ferry-dr/ferry/internal/testutil"
	"github.com/nats-io/nats-server/v2/server"
)

// Sites are both sites' NATS servers, run from a setup that
// siteinit.Generate wrote into a test directory, joined by their TLS
// leafnode on loopback.
type Sites struct {
	Dir            string
	Options        siteinit.Options
	Source, Backup *server.Server
	log            *violationLog
}

// Start generates a setup and starts both servers; they stop when the
// test ends. With logs, the servers log to stderr.
func Start(t testing.TB, logs bool) *Sites {
	t.Helper()
	dir := t.TempDir()
	ports := freePorts(t, 3)
	o := siteinit.Options{Out: dir, SourceHost: "127.0.0.1", BackupHost: "localhost", ListenHost: "127.0.0.1",
		SourcePort: ports[0], BackupPort: ports[1], LeafPort: ports[2], StoreDir: t.TempDir()}
	if _, err := siteinit.Generate(o); err != nil {
		t.Fatal(err)
	}
	if err := o.Complete(); err != nil {
		t.Fatal(err)
	}
	s := &Sites{Dir: dir, Options: o, log: &violationLog{echo: logs}}
	s.Backup = s.start(t, "backup", logs)
	s.Source = s.start(t, "source", logs)
	testutil.CheckFor(t, 15*time.Second, 20*time.Millisecond, func() error {
		if s.Source.NumLeafNodes() == 0 || s.Backup.NumLeafNodes() == 0 {
			return errors.New("the TLS leafnode between the sites did not come up")
		}
		return nil
	})
	return s
}

func (s *Sites) start(t testing.TB, site string, logs bool) *server.Server {
	t.Helper()
	srv, err := bus.StartServer(bus.ServerOptions{Name: site, ConfigFile: s.Options.File(siteinit.SiteConfig(site))})
	if err != nil {
		t.Fatal(err)
	}
	srv.SetLogger(s.log, false, false)
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	return srv
}

// Violations are the permission violations both servers logged so far.
func (s *Sites) Violations() []string {
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	return append([]string(nil), s.log.violations...)
}

// violationLog is the servers' logger: it keeps the permission violations
// and, with echo, prints everything to stderr.
type violationLog struct {
	echo       bool
	mu         sync.Mutex
	violations []string
}

func (l *violationLog) logf(level, format string, v ...any) {
	line := fmt.Sprintf(format, v...)
	if strings.Contains(line, "Violation") {
		l.mu.Lock()
		l.violations = append(l.violations, line)
		l.mu.Unlock()
	}
	if l.echo {
		fmt.Fprintf(os.Stderr, "[%s] %s\n", level, line)
	}
}

func (l *violationLog) Noticef(format string, v ...any) { l.logf("INF", format, v...) }
func (l *violationLog) Warnf(format string, v ...any)   { l.logf("WRN", format, v...) }
func (l *violationLog) Fatalf(format string, v ...any)  { l.logf("FTL", format, v...) }
func (l *violationLog) Errorf(format string, v ...any)  { l.logf("ERR", format, v...) }
func (l *violationLog) Debugf(format string, v ...any)  {}
func (l *violationLog) Tracef(format string, v ...any)  {}

// URL is the client URL of a site's server ("source" or "backup").
func (s *Sites) URL(site string) string {
	return s.Options.SiteURL(site)
}

// ConnOptions are what role's configuration file says: its site's server,
// the CA, its certificate and both domains.
func (s *Sites) ConnOptions(role bus.Role) bus.ConnOptions {
	o := s.Options.RoleConn(role)
	o.Name = "test " + o.Name
	return o
}

// Connect connects as role; the connection closes when the test ends.
func (s *Sites) Connect(t testing.TB, role bus.Role) *bus.Conn {
	t.Helper()
	c, err := bus.Connect(s.ConnOptions(role))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Keys are what role's configuration file says about signed messages, read
// as its commands read them: the key it signs with and the keys it trusts.
type Keys struct {
	Signer *sign.Signer // publisher.signing_key, consumer.signing_key; restore: consumer.restore_key
	Trust  *sign.Trust  // publisher.trusted_keys, consumer.trusted_keys
	// Restore is the publisher's restore_keys: whose restore jobs it applies.
	Restore *sign.Trust
}

// Keys loads role's configuration file and the signing key it names.
func (s *Sites) Keys(t testing.TB, role bus.Role) Keys {
	t.Helper()
	l, err := config.Load(filepath.Join(s.Dir, siteinit.RoleConfig(role)), nil)
	if err != nil {
		t.Fatal(err)
	}
	var signing, trusted, restore string
	switch role {
	case bus.RolePublisher:
		signing, trusted, restore = l.Publisher.SigningKey, l.Publisher.TrustedKeys, l.Publisher.RestoreKeys
	case bus.RoleConsumer:
		signing, trusted = l.Consumer.SigningKey, l.Consumer.TrustedKeys
	case bus.RoleRestore:
		signing, trusted = l.Consumer.RestoreKey, l.Consumer.TrustedKeys
	}
	var k Keys
	if k.Signer, err = sign.LoadKey(signing); err == nil {
		if k.Trust, err = sign.ParseTrust(trusted); err == nil {
			k.Restore, err = sign.ParseTrust(restore)
		}
	}
	if err != nil {
		t.Fatalf("%s: %v", siteinit.RoleConfig(role), err)
	}
	return k
}

// freePorts returns n distinct ports that were free a moment ago: all n
// listeners are open at once, so no port comes twice.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}
