package siteinit

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ferry-dr/ferry/internal/bus"
)

// siteRoles: the users each site's server knows. The operator may look
// from either site.
var siteRoles = map[string][]bus.Role{
	"source": {bus.RoleAgent, bus.RolePublisher, bus.RoleOperator},
	"backup": {bus.RoleConsumer, bus.RoleRestore, bus.RoleOperator},
}

// roleSite is the site whose server each role connects to.
var roleSite = map[bus.Role]string{
	bus.RoleAgent: "source", bus.RolePublisher: "source",
	bus.RoleConsumer: "backup", bus.RoleRestore: "backup", bus.RoleOperator: "backup",
}

var roleUse = map[bus.Role]string{
	bus.RoleAgent:     "ferry agent run and ferry hook on each hypervisor of the source site",
	bus.RolePublisher: "ferry publisher run and ferry backup at the source site",
	bus.RoleConsumer:  "ferry consumer run, ferry retention and ferry scrub at the backup site",
	bus.RoleOperator:  "ferry status and ferry openstack-sync run (read only); it may also connect to the source site's server",
	bus.RoleRestore:   "ferry restore --to source:POOL/IMAGE at the backup site",
}

// q quotes a string for the nats-server configuration format.
func q(s string) string { return strconv.Quote(s) }

func (o *Options) serverHeader(b *strings.Builder, site, domain, pfx string, port int) {
	fmt.Fprintf(b, `# NATS server of Ferry's %s site, written by ferry init.
# Run it with: ferry nats-server --server-config %s
# It is a standard nats-server configuration file; docs/security.md says
# what each part is for. Clients must present a certificate of the CA in
# ca_file; its subject (CN=ferry-<role>) is their user.
server_name: %s
listen: %s
# Ferry's chunks are up to 4 MiB compressed, plus headers.
max_payload: %d
# Monitoring (read only, no authentication): keep it on loopback.
# http: "127.0.0.1:8222"

jetstream {
%s  domain: %s
}

%s
authorization {
  users: [
`, site, o.path(SiteConfig(site)), q("ferry-"+site), q(hostPort(o.ListenHost, port)), bus.MaxPayload,
		o.storeDir(domain), q(domain), o.tlsBlock("", pfx, true))
	for _, r := range siteRoles[site] {
		o.writeUser(b, r, domain)
	}
	b.WriteString("  ]\n}\n")
}

func (o *Options) writeUser(b *strings.Builder, r bus.Role, local string) {
	p := bus.RolePermissions(r, local, o.SourceDomain, o.BackupDomain)
	fmt.Fprintf(b, "    # %s: %s\n", r, roleUse[r])
	fmt.Fprintf(b, "    {\n      user: %s\n      permissions: {\n", q("CN="+r.CommonName()))
	writeList(b, "publish", p.Publish)
	writeList(b, "subscribe", p.Subscribe)
	if p.Responses {
		b.WriteString("        allow_responses: true\n")
	}
	b.WriteString("      }\n    }\n")
}

func writeList(b *strings.Builder, name string, subjects []string) {
	fmt.Fprintf(b, "        %s: { allow: [\n", name)
	for _, s := range subjects {
		fmt.Fprintf(b, "          %s\n", q(s))
	}
	b.WriteString("        ] }\n")
}

func (o *Options) storeDir(domain string) string {
	if o.StoreDir == "" {
		return "  # store_dir: given by ferry nats-server --store (the systemd unit: /var/lib/ferry/nats)\n"
	}
	return "  store_dir: " + q(filepath.Join(o.StoreDir, domain)) + "\n"
}

// tlsBlock is a tls { } block with the certificate pfx.crt and its key,
// indented by indent; mapped: the peer must present a certificate of the
// CA, whose subject is its user.
func (o *Options) tlsBlock(indent, pfx string, mapped bool) string {
	lines := []string{"tls {",
		"  cert_file: " + q(o.path(pfx+".crt")),
		"  key_file: " + q(o.path(pfx+".key")),
		"  ca_file: " + q(o.path(caCert))}
	if mapped {
		lines = append(lines, "  verify_and_map: true")
	}
	lines = append(lines, "  timeout: 5", "}")
	return indent + strings.Join(lines, "\n"+indent) + "\n"
}

func (o *Options) sourceServerConfig() string {
	var b strings.Builder
	o.serverHeader(&b, "source", o.SourceDomain, sourceServerPfx, o.SourcePort)
	fmt.Fprintf(&b, `
# The leafnode to the backup site: the only connection between the sites.
# TLS both ways; this server's certificate (CN=%s) is its identity there.
leafnodes {
  remotes: [
    {
      url: %s
%s    }
  ]
}
`, leafIdentity, q("tls://"+hostPort(o.BackupHost, o.LeafPort)), o.tlsBlock("      ", sourceLeafPfx, false))
	return b.String()
}

func (o *Options) backupServerConfig() string {
	var b strings.Builder
	o.serverHeader(&b, "backup", o.BackupDomain, backupServerPfx, o.BackupPort)
	fmt.Fprintf(&b, `
# The source site's server joins here as a leafnode, with its certificate
# (CN=%s) and nothing else: the users above are checked by the
# server each client connects to.
leafnodes {
  listen: %s
%s  authorization {
    users: [
      { user: %s }
    ]
  }
}
`, leafIdentity, q(hostPort(o.ListenHost, o.LeafPort)), o.tlsBlock("  ", backupServerPfx, true),
		q("CN="+leafIdentity))
	return b.String()
}

func (o *Options) ferryConfig(r bus.Role) string {
	host, port := o.SourceHost, o.SourcePort
	if roleSite[r] == "backup" {
		host, port = o.BackupHost, o.BackupPort
	}
	return fmt.Sprintf(`# Ferry configuration of the %s role, written by ferry init: for
# %s.
# Use it with --config (or install it as /etc/ferry/ferry.yaml) and add the
# ceph section of the site (see the package's example ferry.yaml).
nats:
  url: %s
  ca: %s
  cert: %s
  key: %s
  source_domain: %s
  backup_domain: %s
`, r, roleUse[r], q("tls://"+hostPort(host, port)), q(o.path(caCert)), q(o.path(string(r)+".crt")), q(o.path(string(r)+".key")),
		o.SourceDomain, o.BackupDomain)
}

// trustConfig is role's part of the signed messages (docs/security.md):
// its own signing key, if it signs, and the public keys of the roles it
// takes orders from. public holds the signers' public keys.
func (o *Options) trustConfig(r bus.Role, public map[bus.Role]string) string {
	key := q(o.path(SigningKey(r)))
	switch r {
	case bus.RolePublisher:
		return fmt.Sprintf(`
# The source site signs its manifests, pages and restore outcomes with
# signing_key, and acts only on results signed by the backup site's
# consumer (trusted_keys) and restore jobs signed by the restore identity
# (restore_keys). pools: the source pools it backs up, comma separated;
# unset, every pool.
publisher:
  signing_key: %s
  trusted_keys: %s
  restore_keys: %s
  # pools: ""
`, key, q(public[bus.RoleConsumer]), q(public[bus.RoleRestore]))
	case bus.RoleConsumer:
		return fmt.Sprintf(`
# The backup site signs its results with signing_key and writes only what
# the source site's publisher signed (trusted_keys). pools: the backup
# pools it writes, comma separated; unset, every pool.
consumer:
  signing_key: %s
  trusted_keys: %s
  # pools: ""
`, key, q(public[bus.RolePublisher]))
	case bus.RoleRestore:
		return fmt.Sprintf(`
# ferry restore --to source: signs its restore jobs with restore_key and
# believes only answers signed by the source site's publisher
# (trusted_keys).
consumer:
  restore_key: %s
  trusted_keys: %s
`, key, q(public[bus.RolePublisher]))
	}
	return "" // the agent's snapshot events are not signed; the operator only reads
}
