package main

import (
	"log/slog"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/spf13/pflag"
)

// natsFlags say how to reach NATS JetStream and which domains the sites use.
type natsFlags struct {
	url, creds, ca, cert, key  string
	sourceDomain, backupDomain string
}

func (f *natsFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.url, "nats", defaults.NATS.URL, "NATS server URL(s), comma separated ($FERRY_NATS_URL)")
	fs.StringVar(&f.creds, "nats-creds", "", "NATS credentials file (JWT) ($FERRY_NATS_CREDS)")
	fs.StringVar(&f.ca, "nats-ca", "", "CA bundle to verify the NATS server's TLS certificate")
	fs.StringVar(&f.cert, "nats-cert", "", "TLS client certificate: this process's identity at the NATS server (ferry init writes one per role)")
	fs.StringVar(&f.key, "nats-key", "", "private key of --nats-cert")
	fs.StringVar(&f.sourceDomain, "source-domain", "", "JetStream domain of the source site (empty on a single server)")
	fs.StringVar(&f.backupDomain, "backup-domain", "", "JetStream domain of the backup site (empty on a single server)")
	bindConfig(fs, "nats", "nats.url")
	bindConfig(fs, "nats-creds", "nats.creds")
	bindConfig(fs, "nats-ca", "nats.ca")
	bindConfig(fs, "nats-cert", "nats.cert")
	bindConfig(fs, "nats-key", "nats.key")
	bindConfig(fs, "source-domain", "nats.source_domain")
	bindConfig(fs, "backup-domain", "nats.backup_domain")
}

func (f *natsFlags) options(name string) bus.ConnOptions {
	return bus.ConnOptions{URL: f.url, Creds: f.creds, CA: f.ca, Cert: f.cert, Key: f.key, Name: name,
		SourceDomain: f.sourceDomain, BackupDomain: f.backupDomain}
}

func (f *natsFlags) connect(name string) (*bus.Conn, error) {
	return bus.Connect(f.options(name))
}

// connectDaemon is connect for a daemon, whose log says when NATS drops.
func (f *natsFlags) connectDaemon(name string, log *slog.Logger) (*bus.Conn, error) {
	o := f.options(name)
	o.Log = log
	return bus.Connect(o)
}
