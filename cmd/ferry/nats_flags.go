package main

import (
	"os"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/spf13/pflag"
)

// natsFlags say how to reach NATS JetStream and which domains the sites use.
type natsFlags struct {
	url, creds, ca             string
	sourceDomain, backupDomain string
}

func (f *natsFlags) register(fs *pflag.FlagSet) {
	def := os.Getenv("FERRY_NATS_URL")
	if def == "" {
		def = "nats://127.0.0.1:4222"
	}
	fs.StringVar(&f.url, "nats", def, "NATS server URL(s), comma separated ($FERRY_NATS_URL)")
	fs.StringVar(&f.creds, "nats-creds", os.Getenv("FERRY_NATS_CREDS"), "NATS credentials file ($FERRY_NATS_CREDS)")
	fs.StringVar(&f.ca, "nats-ca", "", "CA bundle to verify the NATS server's TLS certificate")
	fs.StringVar(&f.sourceDomain, "source-domain", "", "JetStream domain of the source site (empty on a single server)")
	fs.StringVar(&f.backupDomain, "backup-domain", "", "JetStream domain of the backup site (empty on a single server)")
}

func (f *natsFlags) connect(name string) (*bus.Conn, error) {
	return bus.Connect(bus.ConnOptions{URL: f.url, Creds: f.creds, CA: f.ca, Name: name,
		SourceDomain: f.sourceDomain, BackupDomain: f.backupDomain})
}
