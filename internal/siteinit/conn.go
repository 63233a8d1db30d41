package siteinit

import "github.com/ferry-dr/ferry/internal/bus"

// Complete fills what o leaves empty, as Generate does, and checks the rest.
func (o *Options) Complete() error { return o.defaults() }

// File is where a generated file is, as the configuration files name it.
func (o *Options) File(name string) string { return o.path(name) }

// SiteURL is the client URL of a site's server ("source" or "backup").
func (o *Options) SiteURL(site string) string {
	if site == "backup" {
		return "tls://" + hostPort(o.BackupHost, o.BackupPort)
	}
	return "tls://" + hostPort(o.SourceHost, o.SourcePort)
}

// RoleConn is what role's configuration file says: its site's server, the
// CA, its certificate and both domains.
func (o *Options) RoleConn(role bus.Role) bus.ConnOptions {
	return bus.ConnOptions{URL: o.SiteURL(roleSite[role]), Name: string(role),
		CA: o.path(caCert), Cert: o.path(string(role) + ".crt"), Key: o.path(string(role) + ".key"),
		SourceDomain: o.SourceDomain, BackupDomain: o.BackupDomain}
}
