// Package siteinit writes a secure two-site setup that an operator can use
// as it is: a private CA, a TLS certificate for each site's NATS server,
// one client certificate per role (internal/bus's roles), the signing keys
// of the publisher, the consumer and the restore identity (internal/sign),
// both sites' nats-server configuration files (TLS for clients and the
// leafnode, a user with least-privilege permissions per role) and a Ferry
// configuration file per role, which names only its own role's private
// keys. docs/security.md explains the result.
package siteinit

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/sign"
)

// Options describe the two sites.
type Options struct {
	Out string // directory to write into (created; files in it are never replaced)
	// Paths is where the files will be on the hosts, as the configuration
	// files name them; empty: Out, made absolute.
	Paths                  string
	SourceHost, BackupHost string // names or addresses the other hosts reach the servers by
	ListenHost             string // the servers' listening address; empty: 0.0.0.0
	SourcePort, BackupPort int    // client ports
	LeafPort               int    // the backup site's leafnode port
	// StoreDir, if set, is the JetStream store of both servers, as
	// STORE/<domain>; empty: ferry nats-server --store gives it.
	StoreDir     string
	SourceDomain string
	BackupDomain string
}

// defaults fills what o leaves empty and checks the rest.
func (o *Options) defaults() error {
	if o.SourceHost == "" || o.BackupHost == "" {
		return errors.New("both site hosts are needed: --source-host and --backup-host (the names or addresses the hosts of each site reach its NATS server by)")
	}
	if o.Out == "" {
		return errors.New("--out DIR is needed")
	}
	setDefault(&o.ListenHost, "0.0.0.0")
	setDefault(&o.SourceDomain, "source")
	setDefault(&o.BackupDomain, "backup")
	if o.SourceDomain == o.BackupDomain {
		return fmt.Errorf("both sites have JetStream domain %q: give each its own", o.SourceDomain)
	}
	for _, p := range []*int{&o.SourcePort, &o.BackupPort} {
		if *p == 0 {
			*p = 4222
		}
	}
	if o.LeafPort == 0 {
		o.LeafPort = 7422
	}
	if o.Paths == "" {
		abs, err := filepath.Abs(o.Out)
		if err != nil {
			return err
		}
		o.Paths = abs
	}
	return nil
}

func setDefault(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

// File names in the output directory.
const (
	caCert          = "ca.crt"
	caKey           = "ca.key"
	leafIdentity    = "ferry-leaf-source"
	sourceSiteConf  = "source-nats.conf"
	backupSiteConf  = "backup-nats.conf"
	sourceServerPfx = "source-server"
	backupServerPfx = "backup-server"
	sourceLeafPfx   = "source-leaf"
)

// RoleConfig is the Ferry configuration file of role in the output.
func RoleConfig(role bus.Role) string { return string(role) + ".yaml" }

// SigningKey is the signing key file (an nkeys seed) of role in the
// output: the publisher, the consumer and the restore identity sign.
func SigningKey(role bus.Role) string { return string(role) + "-signing.key" }

// signers are the roles that sign their messages; snapshot events (the
// agent's) are not signed, and the operator only reads.
var signers = []bus.Role{bus.RolePublisher, bus.RoleConsumer, bus.RoleRestore}

// SiteConfig is the nats-server configuration file of a site ("source" or "backup").
func SiteConfig(site string) string { return site + "-nats.conf" }

// Generate writes the setup into o.Out. It refuses to start when any of its
// files exists already, so nothing an operator deployed is overwritten.
func Generate(o Options) ([]string, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	ca, caPair, err := newCA("Ferry CA")
	if err != nil {
		return nil, err
	}
	files[caCert], files[caKey] = caPair.cert, caPair.key
	for _, s := range []struct{ pfx, cn, host string }{
		{sourceServerPfx, "ferry-source-server", o.SourceHost},
		{backupServerPfx, "ferry-backup-server", o.BackupHost},
	} {
		kp, err := ca.issue(s.cn, serverHosts(s.host))
		if err != nil {
			return nil, err
		}
		files[s.pfx+".crt"], files[s.pfx+".key"] = kp.cert, kp.key
	}
	leaf, err := ca.issue(leafIdentity, nil)
	if err != nil {
		return nil, err
	}
	files[sourceLeafPfx+".crt"], files[sourceLeafPfx+".key"] = leaf.cert, leaf.key
	public := map[bus.Role]string{}
	for _, r := range signers {
		seed, pub, err := sign.Generate()
		if err != nil {
			return nil, err
		}
		files[SigningKey(r)], public[r] = append(seed, '\n'), pub
	}
	for _, r := range bus.Roles() {
		kp, err := ca.issue(r.CommonName(), nil)
		if err != nil {
			return nil, err
		}
		files[string(r)+".crt"], files[string(r)+".key"] = kp.cert, kp.key
		files[RoleConfig(r)] = []byte(o.ferryConfig(r) + o.trustConfig(r, public))
	}
	files[sourceSiteConf] = []byte(o.sourceServerConfig())
	files[backupSiteConf] = []byte(o.backupServerConfig())
	return write(o.Out, files)
}

func serverHosts(host string) []string {
	hosts := []string{host}
	for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
		if h != host {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// write creates every file or none: it checks first that none exists.
func write(dir string, files map[string][]byte) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var names []string
	for name := range files {
		path := filepath.Join(dir, name)
		if _, err := os.Lstat(path); err == nil {
			return nil, fmt.Errorf("%s exists already: ferry init never replaces a file (write into an empty directory, or move the old setup away)", path)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".key") {
			mode = 0o600
		}
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return nil, err
		}
		_, err = f.Write(files[name])
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("write %s: %w", name, err)
		}
	}
	return names, nil
}

func (o *Options) path(name string) string { return filepath.Join(o.Paths, name) }

func hostPort(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }
