package bus

import (
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ConnOptions say how to reach NATS: an embedded server in this process, or
// a URL with optional credentials and TLS.
type ConnOptions struct {
	URL       string
	Creds     string // NATS credentials file
	CA        string // CA bundle for TLS
	Name      string // client name shown by the server
	InProcess *server.Server
	// SourceDomain and BackupDomain name the JetStream domains of the two
	// sites; both empty on a single server.
	SourceDomain, BackupDomain string
}

// Conn is a NATS connection with a JetStream context for each site.
type Conn struct {
	NC     *nats.Conn
	closed chan struct{}       // closed when NC is, for good
	Source jetstream.JetStream // snapshot events
	Backup jetstream.JetStream // chunks, manifests, state, results
}

// Connect connects and keeps reconnecting forever: daemons outlive NATS restarts.
func Connect(o ConnOptions) (*Conn, error) {
	closed := make(chan struct{})
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.Timeout(10 * time.Second),
	}
	if o.Creds != "" {
		opts = append(opts, nats.UserCredentials(o.Creds))
	}
	if o.CA != "" {
		opts = append(opts, nats.RootCAs(o.CA))
	}
	url := o.URL
	if o.InProcess != nil {
		opts = append(opts, nats.InProcessServer(o.InProcess))
		url = ""
	}
	if url == "" && o.InProcess == nil {
		url = nats.DefaultURL
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w (is the server up? start one with: ferry nats-server)", displayURL(url), err)
	}
	c := &Conn{NC: nc, closed: closed}
	if c.Source, err = newJS(nc, o.SourceDomain); err == nil {
		c.Backup, err = newJS(nc, o.BackupDomain)
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

func newJS(nc *nats.Conn, domain string) (jetstream.JetStream, error) {
	if domain == "" {
		return jetstream.New(nc)
	}
	return jetstream.NewWithDomain(nc, domain)
}

func displayURL(u string) string {
	if u == "" {
		return "the in-process server"
	}
	return u
}

// Closed is closed when the connection is closed for good: by Close, by
// the server (a protocol violation, an authorization revoked) or when
// reconnecting gives up. An outage does not close it: the client
// reconnects.
func (c *Conn) Closed() <-chan struct{} { return c.closed }

// Close drains pending publishes and closes the connection.
func (c *Conn) Close() {
	_ = c.NC.Drain()
}
