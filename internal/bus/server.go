package bus

import (
	"fmt"
	"net/url"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// MaxPayload is the largest message Ferry sends: a compressed chunk of up to
// MaxChunkSize plus headers. The embedded server allows it; an external
// cluster must set max_payload at least this high (see docs/operations.md).
const MaxPayload = 8 << 20

// ServerOptions configure an embedded NATS server with JetStream.
type ServerOptions struct {
	Name     string
	StoreDir string // JetStream file store
	Host     string // "" with Port 0 and InProcess: no listener at all
	Port     int    // -1 picks a free port
	Domain   string // JetStream domain ("" for a single-site setup)
	// InProcess serves only in-process clients (no TCP listener).
	InProcess bool
	// LeafPort accepts leafnode connections from another site (0: none, -1: any free port).
	LeafPort int
	// LeafRemotes are URLs of other sites' leafnode ports to join.
	LeafRemotes []string
	// LeafNoAdvertise keeps this server's own leafnode URLs from the sites
	// that join it: behind a relay or NAT they must keep the address they
	// were given, or they reconnect around it.
	LeafNoAdvertise bool
}

// StartServer starts an embedded NATS server with JetStream and waits until
// it accepts clients.
func StartServer(o ServerOptions) (*server.Server, error) {
	opts := &server.Options{
		ServerName:      o.Name,
		Host:            o.Host,
		Port:            o.Port,
		DontListen:      o.InProcess,
		JetStream:       true,
		StoreDir:        o.StoreDir,
		JetStreamDomain: o.Domain,
		MaxPayload:      MaxPayload,
		NoSigs:          true,
		NoLog:           true,
	}
	if o.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if o.LeafPort != 0 {
		opts.LeafNode.Host = opts.Host
		opts.LeafNode.Port = o.LeafPort
		opts.LeafNode.NoAdvertise = o.LeafNoAdvertise
	}
	for _, r := range o.LeafRemotes {
		u, err := url.Parse(r)
		if err != nil {
			return nil, fmt.Errorf("leafnode remote %q: %w", r, err)
		}
		opts.LeafNode.Remotes = append(opts.LeafNode.Remotes, &server.RemoteLeafOpts{URLs: []*url.URL{u}})
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("nats server %q did not become ready in 10 s (store %s)", o.Name, o.StoreDir)
	}
	return s, nil
}
