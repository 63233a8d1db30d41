// Package config is Ferry's one configuration: a typed struct loaded from a
// YAML file, then overridden by FERRY_* environment variables. The commands
// apply their flags on top (flags win), so every setting has one name in
// each of the three places:
//
//	file key            environment                  flag
//	nats.url            FERRY_NATS_URL               --nats
//	publisher.chunk_size FERRY_PUBLISHER_CHUNK_SIZE  --chunk-size
//
// Decoding is strict: an unknown key, a value of the wrong type or out of
// range is a Problem that names where it came from (file and line, or the
// environment variable), the key and why.
package config

import (
	"fmt"
	"time"

	"github.com/ferry-dr/ferry/internal/chunk"
)

// DefaultPath is read when no --config or $FERRY_CONFIG names a file, if it exists.
const DefaultPath = "/etc/ferry/ferry.yaml"

// PathEnv names the environment variable that points at the config file.
const PathEnv = "FERRY_CONFIG"

// Config is everything the ferry commands take that an operator sets once.
type Config struct {
	Ceph      CephSites `yaml:"ceph"`
	NATS      NATS      `yaml:"nats"`
	Publisher Publisher `yaml:"publisher"`
	Consumer  Consumer  `yaml:"consumer"`
	Chunk     Chunk     `yaml:"chunk"`
	Log       Log       `yaml:"log"`
	// The daemons' own schedules and servers.
	Retention  Retention  `yaml:"retention"`
	Agent      Agent      `yaml:"agent"`
	NATSServer NATSServer `yaml:"nats_server"`
}

// CephSites: the publisher reads the source cluster, the consumer writes the
// backup cluster. A host usually sets only its own site's section.
type CephSites struct {
	Source Ceph `yaml:"source"`
	Backup Ceph `yaml:"backup"`
}

// Ceph is how to reach one cluster; empty values mean librados' defaults.
type Ceph struct {
	Conf    string `yaml:"conf"`    // ceph.conf; empty: $CEPH_CONF, then /etc/ceph/ceph.conf
	ID      string `yaml:"id"`      // cephx id without "client."; empty: admin
	Keyring string `yaml:"keyring"` // empty: from ceph.conf
}

// NATS is how to reach JetStream and which domains the two sites use.
type NATS struct {
	URL          string `yaml:"url"`           // comma separated
	Creds        string `yaml:"creds"`         // credentials file
	CA           string `yaml:"ca"`            // CA bundle for TLS
	Cert         string `yaml:"cert"`          // TLS client certificate
	Key          string `yaml:"key"`           // its private key
	SourceDomain string `yaml:"source_domain"` // empty on a single server
	BackupDomain string `yaml:"backup_domain"`
}

// Publisher configures `ferry publisher run` and `ferry backup`.
type Publisher struct {
	ChunkSize        Size   `yaml:"chunk_size"`
	CompressionLevel int    `yaml:"compression_level"`
	MetricsListen    string `yaml:"metrics_listen"` // empty: no /metrics
	// What the source site may do on a message's word (docs/security.md).
	Pools       string `yaml:"pools"`        // comma separated pools it exports; empty: every pool
	SigningKey  string `yaml:"signing_key"`  // nkeys seed file that signs manifests and pages
	TrustedKeys string `yaml:"trusted_keys"` // the backup site's public keys (results), comma separated
	RestoreKeys string `yaml:"restore_keys"` // the restore identity's public keys (restore jobs)
}

// Consumer configures `ferry consumer run`.
type Consumer struct {
	Site          string        `yaml:"site"`
	BaseWait      time.Duration `yaml:"base_wait"`
	PoolMap       string        `yaml:"pool_map"`       // SRC=DST,...; empty: same pool names
	MetricsListen string        `yaml:"metrics_listen"` // empty: no /metrics
	// What the backup site may do on a message's word (docs/security.md).
	Pools       string `yaml:"pools"`        // comma separated backup pools it writes; empty: every pool
	SigningKey  string `yaml:"signing_key"`  // nkeys seed file that signs results
	TrustedKeys string `yaml:"trusted_keys"` // the source site's public keys (manifests, pages)
	RestoreKey  string `yaml:"restore_key"`  // seed file ferry restore --to source: signs jobs with
}

// Chunk configures the chunk store at rest; every process of both sites
// that stores or reads chunks must agree on it.
type Chunk struct {
	KeyFile string `yaml:"key_file"` // empty: chunks are stored unencrypted
}

// Log configures the daemons' structured logs.
type Log struct {
	Level string `yaml:"level"` // debug, info, warn or error
}

// Retention is the backup site's retention: `ferry consumer run` applies it
// every Interval to every image the site holds, `ferry retention apply`
// on demand. Policies are written like latest3,days7,weeks4,months12.
type Retention struct {
	Interval time.Duration `yaml:"interval"` // 0: the consumer applies none
	Default  string        `yaml:"default"`  // empty: images no rule names keep every snapshot
	Pools    Pairs         `yaml:"pools"`    // pool: policy
	Images   Pairs         `yaml:"images"`   // POOL/IMAGE pattern: policy, first match wins
}

// Agent configures `ferry agent run` on a hypervisor host.
type Agent struct {
	Schedules        Pairs         `yaml:"schedules"` // domain (name or UUID): interval
	Policies         Pairs         `yaml:"policies"`  // ferry:policy name: interval
	OpenStack        bool          `yaml:"openstack"` // read ferry:policy from Cinder and Nova
	AllProjects      bool          `yaml:"all_projects"`
	PolicyRefresh    time.Duration `yaml:"policy_refresh"`
	BackupOnShutdown bool          `yaml:"backup_on_shutdown"`
}

// NATSServer configures `ferry nats-server`: either ServerConfig, a
// complete nats-server configuration file, or the keys after it.
type NATSServer struct {
	ServerConfig    string `yaml:"server_config"`
	StoreDir        string `yaml:"store_dir"` // empty: $STATE_DIRECTORY (systemd's StateDirectory=)
	Listen          string `yaml:"listen"`
	Domain          string `yaml:"domain"`
	LeafnodeListen  string `yaml:"leafnode_listen"`
	LeafnodeRemotes string `yaml:"leafnode_remotes"` // comma separated
	// LeafnodeNoAdvertise: the other site reaches the leafnode port
	// through a relay or NAT, so this server keeps its own address to itself.
	LeafnodeNoAdvertise bool `yaml:"leafnode_no_advertise"`
}

// Default is the configuration with nothing set: what the flags show as
// their defaults.
func Default() Config {
	return Config{
		NATS:       NATS{URL: "nats://127.0.0.1:4222"},
		Publisher:  Publisher{ChunkSize: 4 << 20, CompressionLevel: chunk.DefaultLevel},
		Consumer:   Consumer{Site: "backup", BaseWait: 30 * time.Minute},
		Log:        Log{Level: "info"},
		Agent:      Agent{PolicyRefresh: 5 * time.Minute},
		NATSServer: NATSServer{Listen: "127.0.0.1:4222"},
	}
}

// Problem is one thing wrong with a configuration.
type Problem struct {
	Source string // "FILE:LINE", "$FERRY_X", or "" for a built-in default
	Key    string // dotted key, e.g. nats.url; "" for the whole file
	Why    string
}

func (p Problem) String() string {
	s := p.Why
	if p.Key != "" {
		s = p.Key + ": " + s
	}
	if p.Source != "" {
		s = p.Source + ": " + s
	}
	return s
}

// Problems is the error Load and Check return: every problem found, not just the first.
type Problems []Problem

func (ps Problems) Error() string {
	if len(ps) == 1 {
		return "config: " + ps[0].String()
	}
	s := fmt.Sprintf("config: %d problems:", len(ps))
	for _, p := range ps {
		s += "\n  " + p.String()
	}
	return s
}
