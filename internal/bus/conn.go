package bus

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ConnOptions say how to reach NATS: an embedded server in this process, or
// a URL with optional credentials and TLS.
type ConnOptions struct {
	URL   string
	Creds string // NATS credentials file (JWT)
	CA    string // CA bundle for TLS
	// Cert and Key are a TLS client certificate and its key. A server
	// with verify_and_map takes the certificate's subject as the user.
	Cert, Key string
	Name      string // client name shown by the server
	InProcess *server.Server
	// SourceDomain and BackupDomain name the JetStream domains of the two
	// sites; both empty on a single server.
	SourceDomain, BackupDomain string
	// Log, if set, is told when the connection drops and comes back.
	Log *slog.Logger
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
	opts = append(opts, o.logHandlers()...)
	sec, err := o.Security()
	if err != nil {
		return nil, err
	}
	opts = append(opts, sec...)
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
		return nil, ConnectError(url, err)
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

// Security turns the credentials and TLS files into connection options.
// With a client certificate, the connection's reply subjects start with
// _INBOX.<the certificate's common name>, so a server can let each
// identity read only its own replies (ferry init's permissions do).
func (o ConnOptions) Security() ([]nats.Option, error) {
	var opts []nats.Option
	if o.Creds != "" {
		opts = append(opts, nats.UserCredentials(o.Creds))
	}
	if o.CA != "" {
		opts = append(opts, nats.RootCAs(o.CA))
	}
	if (o.Cert == "") != (o.Key == "") {
		return nil, errors.New("a NATS client certificate needs its key and the other way round: give both --nats-cert and --nats-key")
	}
	if o.Cert != "" {
		pair, err := tls.LoadX509KeyPair(o.Cert, o.Key)
		if err != nil {
			return nil, fmt.Errorf("NATS client certificate %s with key %s: %w", o.Cert, o.Key, err)
		}
		opts = append(opts, nats.ClientCert(o.Cert, o.Key))
		if cert, err := x509.ParseCertificate(pair.Certificate[0]); err == nil {
			if prefix := InboxPrefix(cert.Subject.CommonName); prefix != "" {
				opts = append(opts, nats.CustomInboxPrefix(prefix))
			}
		}
	}
	return opts, nil
}

// InboxPrefix is where the replies to an identity named cn go; "" when cn
// cannot be a subject token.
func InboxPrefix(cn string) string {
	if cn == "" || strings.ContainsAny(cn, " \t\r\n.*>") {
		return ""
	}
	return "_INBOX." + cn
}

// ConnectError says why a connection failed, without credentials in the
// URL, and what to check for the usual TLS and authorization failures.
func ConnectError(url string, err error) error {
	hint := "is the server up? start one with: ferry nats-server"
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	msg := err.Error()
	switch {
	case errors.As(err, &unknownCA):
		hint = "the server's certificate is not signed by the CA in --nats-ca (nats.ca): give the CA that signed it"
	case errors.As(err, &hostErr):
		hint = "the server's certificate does not name the host in --nats (nats.url): connect by a name or address the certificate holds"
	case strings.Contains(msg, "remote error: tls:") || strings.Contains(msg, "closed by remote after TLS handshake"):
		// The server's alert about the client's certificate; with TLS 1.3
		// it may only show as a connection closed after the handshake.
		hint = "the server requires a client certificate issued by the CA it trusts, and none or another was given: give --nats-cert and --nats-key (nats.cert, nats.key) of this role"
	case errors.Is(err, nats.ErrAuthorization):
		hint = "the server did not accept this identity: check --nats-cert/--nats-key or --nats-creds against the server's users"
	case strings.Contains(msg, "secure connection") || strings.Contains(msg, "tls"):
		hint = "check the TLS settings: --nats-ca, --nats-cert, --nats-key (nats.ca, nats.cert, nats.key)"
	}
	return fmt.Errorf("connect to NATS at %s: %w (%s)", displayURL(url), err, hint)
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
	return RedactURL(u)
}

// RedactURL hides the user and password (or token) of each URL in a comma
// separated list, so that no log, error or listing shows them.
func RedactURL(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		parts[i] = redactOne(p)
	}
	return strings.Join(parts, ",")
}

func redactOne(s string) string {
	u, err := url.Parse(strings.TrimSpace(s))
	if err == nil {
		if u.User == nil {
			return s
		}
		u.User = url.User("REDACTED")
		return strings.Replace(s, strings.TrimSpace(s), u.String(), 1)
	}
	// Unparsable: cut everything up to the last '@' of the authority.
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		scheme, rest = "", s
	}
	host := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		host = rest[:i]
	}
	at := strings.LastIndex(host, "@")
	if at < 0 {
		return s
	}
	out := "REDACTED@" + rest[at+1:]
	if ok {
		out = scheme + "://" + out
	}
	return out
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
