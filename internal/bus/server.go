package bus

import (
	"errors"
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
	// LeafHost and LeafPort accept leafnode connections from another site
	// (port 0: none, -1: any free port; host "": Host's).
	LeafHost string
	LeafPort int
	// LeafRemotes are URLs of other sites' leafnode ports to join.
	LeafRemotes []string
	// ConfigFile is a standard nats-server configuration file (TLS,
	// users and permissions, leafnodes, JetStream, monitoring, logging).
	// With it, every other field but Name, Log and StoreDir is ignored:
	// the file says it all. StoreDir is the JetStream store when the file
	// names none; Ferry raises max_payload when the file leaves it out.
	ConfigFile string
	// Log writes the server's log to stderr (or the file's log_file).
	Log bool
	// LeafNoAdvertise keeps this server's own leafnode URLs from the sites
	// that join it: behind a relay or NAT they must keep the address they
	// were given, or they reconnect around it.
	LeafNoAdvertise bool
}

// StartServer starts an embedded NATS server with JetStream and waits until
// it accepts clients.
func StartServer(o ServerOptions) (*server.Server, error) {
	opts, err := serverOptions(o)
	if err != nil {
		return nil, err
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	if o.Log {
		s.ConfigureLogger()
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("nats server %q did not become ready in 10 s (store %s)", o.Name, opts.StoreDir)
	}
	return s, nil
}

func serverOptions(o ServerOptions) (*server.Options, error) {
	if o.ConfigFile != "" {
		opts, err := server.ProcessConfigFile(o.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("nats server configuration %s: %w", o.ConfigFile, err)
		}
		if !opts.JetStream {
			return nil, fmt.Errorf("nats server configuration %s: JetStream is off; Ferry needs it (add a jetstream { domain: ... } block)", o.ConfigFile)
		}
		switch {
		case opts.StoreDir == "" && o.StoreDir == "":
			return nil, fmt.Errorf("nats server configuration %s names no JetStream store_dir: give one there or with --store", o.ConfigFile)
		case opts.StoreDir == "":
			opts.StoreDir = o.StoreDir
		case o.StoreDir != "" && o.StoreDir != opts.StoreDir:
			return nil, fmt.Errorf("JetStream store %s and the store_dir %s of %s: set it in one place", o.StoreDir, opts.StoreDir, o.ConfigFile)
		}
		if opts.MaxPayload == 0 {
			opts.MaxPayload = MaxPayload
		}
		if opts.ServerName == "" {
			opts.ServerName = o.Name
		}
		opts.NoSigs = true
		opts.NoLog = !o.Log
		return opts, nil
	}
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
		NoLog:           !o.Log,
	}
	if o.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if o.LeafPort != 0 {
		opts.LeafNode.Host = o.LeafHost
		if o.LeafHost == "" {
			opts.LeafNode.Host = opts.Host
		}
		opts.LeafNode.Port = o.LeafPort
		opts.LeafNode.NoAdvertise = o.LeafNoAdvertise
	}
	for _, r := range o.LeafRemotes {
		u, err := url.Parse(r)
		if err != nil {
			// url.Error repeats the URL, password and all.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return nil, fmt.Errorf("leafnode remote %s: %w", RedactURL(r), err)
		}
		opts.LeafNode.Remotes = append(opts.LeafNode.Remotes, &server.RemoteLeafOpts{URLs: []*url.URL{u}})
	}
	return opts, nil
}
