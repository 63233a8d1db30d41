package cindertest

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/endpoints"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/services"
)

// Keystone is a running Keystone (identity v3, fernet tokens, sqlite)
// under uwsgi, bootstrapped with an admin user and the region RegionOne.
type Keystone struct {
	Dir           string
	AuthURL       string // http://127.0.0.1:PORT/v3
	AdminPassword string
	proc          *Process
}

// StartKeystone sets up and starts Keystone in dir.
func StartKeystone(ctx context.Context, dir string) (*Keystone, error) {
	if err := checkInstalled("keystone.server.wsgi"); err != nil {
		return nil, err
	}
	if _, err := os.Stat("/usr/bin/uwsgi"); err != nil {
		return nil, fmt.Errorf("uwsgi not found (Debian's keystone package brings it): %w", err)
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	me, err := user.Current()
	if err != nil {
		return nil, err
	}
	grp, err := user.LookupGroupId(me.Gid)
	if err != nil {
		return nil, err
	}
	ks := &Keystone{Dir: dir, AuthURL: fmt.Sprintf("http://127.0.0.1:%d/v3", port), AdminPassword: "ferry-admin-secret"}
	conf := filepath.Join(dir, "keystone.conf")
	if err := writeTemplate(conf, keystoneConf, map[string]any{"Dir": dir}); err != nil {
		return nil, err
	}
	manage := func(args ...string) error {
		return run(ctx, append([]string{Python, "/usr/bin/keystone-manage", "--config-file", conf}, args...)...)
	}
	if err := manage("db_sync"); err != nil {
		return nil, fmt.Errorf("create the Keystone database: %w", err)
	}
	// Without WAL, concurrent requests fail with "database is locked".
	if err := sqliteWAL(ctx, filepath.Join(dir, "keystone.sqlite")); err != nil {
		return nil, err
	}
	if err := manage("fernet_setup", "--keystone-user", me.Username, "--keystone-group", grp.Name); err != nil {
		return nil, err
	}
	if err := manage("bootstrap", "--bootstrap-password", ks.AdminPassword,
		"--bootstrap-admin-url", ks.AuthURL, "--bootstrap-public-url", ks.AuthURL,
		"--bootstrap-internal-url", ks.AuthURL, "--bootstrap-region-id", "RegionOne"); err != nil {
		return nil, err
	}
	p, err := start("keystone (uwsgi)", filepath.Join(dir, "keystone.out"), nil,
		"/usr/bin/uwsgi", "--http-socket", fmt.Sprintf("127.0.0.1:%d", port),
		"--plugin", "python3", "--wsgi-file", "/usr/bin/keystone-wsgi-public",
		"--master", "--processes", "1", "--threads", "2", "--die-on-term", "--need-app",
		// uwsgi's HTTP socket does not keep connections alive; without this
		// header clients reuse a closed one and see "connection reset".
		"--add-header", "Connection: close",
		"--env", "OS_KEYSTONE_CONFIG_FILES="+conf, "--env", "OS_KEYSTONE_CONFIG_DIR="+dir)
	if err != nil {
		return nil, err
	}
	ks.proc = p
	if err := waitHTTP(ctx, ks.AuthURL, p); err != nil {
		p.Stop()
		return nil, fmt.Errorf("%w\n(keystone's own log: %s)", err, filepath.Join(dir, "keystone.log"))
	}
	return ks, nil
}

// Stop stops Keystone by its pid.
func (k *Keystone) Stop() error { return k.proc.Stop() }

// Admin returns a provider client authenticated as the bootstrap admin.
func (k *Keystone) Admin(ctx context.Context) (*gophercloud.ProviderClient, error) {
	return openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{
		IdentityEndpoint: k.AuthURL, Username: "admin", Password: k.AdminPassword, DomainName: "Default",
		Scope: &gophercloud.AuthScope{ProjectName: "admin", DomainName: "Default"},
	})
}

// Identity returns an identity v3 client of the bootstrap admin.
func (k *Keystone) Identity(ctx context.Context) (*gophercloud.ServiceClient, error) {
	pc, err := k.Admin(ctx)
	if err != nil {
		return nil, fmt.Errorf("admin login to keystone: %w", err)
	}
	return openstack.NewIdentityV3(pc, gophercloud.EndpointOpts{Region: "RegionOne"})
}

// RegisterEndpoint adds a service with public and internal endpoints at url.
func (k *Keystone) RegisterEndpoint(ctx context.Context, name, typ, url string) error {
	id, err := k.Identity(ctx)
	if err != nil {
		return err
	}
	svc, err := services.Create(ctx, id, services.CreateOpts{Type: typ, Extra: map[string]any{"name": name}}).Extract()
	if err != nil {
		return fmt.Errorf("register service %s: %w", name, err)
	}
	for _, av := range []gophercloud.Availability{gophercloud.AvailabilityPublic, gophercloud.AvailabilityInternal} {
		if _, err := endpoints.Create(ctx, id, endpoints.CreateOpts{Availability: av, Name: name, Region: "RegionOne",
			URL: url, ServiceID: svc.ID}).Extract(); err != nil {
			return fmt.Errorf("register %s endpoint of %s: %w", av, name, err)
		}
	}
	return nil
}

const keystoneConf = `[DEFAULT]
log_file = {{.Dir}}/keystone.log
use_stderr = false

[database]
connection = sqlite:///{{.Dir}}/keystone.sqlite

[fernet_tokens]
key_repository = {{.Dir}}/fernet-keys

[token]
provider = fernet

[cache]
enabled = false
`
