package openstack_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferry-dr/ferry/internal/openstack"
	"github.com/gophercloud/gophercloud/v2"
	gophercloudos "github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/applicationcredentials"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/domains"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/projects"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/roles"
	"github.com/gophercloud/gophercloud/v2/openstack/identity/v3/users"
)

// Against a real Keystone and a Cinder API that checks its tokens: a user
// in one domain with a project in another, logged in from OS_* variables
// (the user and project domains must both be honoured); then an
// application credential of that user, from clouds.yaml with its secret in
// secure.yaml. Each writes metadata and keeps the operator's key.
func TestKeystoneAuth(t *testing.T) {
	ctx := context.Background()
	id, err := keystone.Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dom, err := domains.Create(ctx, id, domains.CreateOpts{Name: "ferry-users"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	proj, err := projects.Create(ctx, id, projects.CreateOpts{Name: "backups", DomainID: "default"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	user, err := users.Create(ctx, id, users.CreateOpts{Name: "ferry-sync", DomainID: dom.ID, Password: "sync-secret"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	member := roleID(t, id, "member")
	if err := roles.Assign(ctx, id, member, roles.AssignOpts{UserID: user.ID, ProjectID: proj.ID}).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	// Volumes live in the shared database; the noauth API makes one in the
	// Keystone project.
	vid := newVolume(t, noauthClients(t, proj.ID), "keystone-vol", map[string]string{"owner": "ops"})
	vol := openstack.Target{Kind: openstack.Volume, ID: vid}

	env := map[string]string{
		"OS_AUTH_URL": keystone.AuthURL, "OS_USERNAME": "ferry-sync", "OS_PASSWORD": "sync-secret",
		"OS_USER_DOMAIN_NAME": "ferry-users", "OS_PROJECT_NAME": "backups", "OS_PROJECT_DOMAIN_NAME": "Default",
		"OS_REGION_NAME": "RegionOne", "OS_INTERFACE": "internal",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	t.Setenv("OS_CLOUD", "")
	cfg, err := openstack.ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	pw, err := openstack.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := openstack.NewMetadata(pw).Merge(ctx, vol, map[string]string{openstack.KeyStatus: "running"}); err != nil {
		t.Fatal(err)
	}
	requireMetadata(t, metadataOf(t, openstack.NewMetadata(pw), vid), map[string]string{"owner": "ops", "ferry:status": "running"})

	// The application credential, created by the user itself.
	userID, err := gophercloudos.NewIdentityV3(pw.Provider, pw.Endpoints)
	if err != nil {
		t.Fatal(err)
	}
	ac, err := applicationcredentials.Create(ctx, userID, user.ID, applicationcredentials.CreateOpts{Name: "ferry-syncer"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	clouds := fmt.Sprintf(`clouds:
  backup-cloud:
    auth_type: v3applicationcredential
    auth:
      auth_url: %s
      application_credential_id: %s
    region_name: RegionOne
    interface: public
`, keystone.AuthURL, ac.ID)
	secure := fmt.Sprintf("clouds:\n  backup-cloud:\n    auth:\n      application_credential_secret: %s\n", ac.Secret)
	if err := os.WriteFile(filepath.Join(dir, "clouds.yaml"), []byte(clouds), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secure.yaml"), []byte(secure), 0o600); err != nil {
		t.Fatal(err)
	}
	for k := range env {
		t.Setenv(k, "")
	}
	t.Setenv("OS_CLOUD", "backup-cloud")
	t.Setenv("OS_CLIENT_CONFIG_FILE", filepath.Join(dir, "clouds.yaml"))
	if cfg, err = openstack.ConfigFromEnv(); err != nil {
		t.Fatal(err)
	}
	app, err := openstack.Connect(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := openstack.NewMetadata(app).Merge(ctx, vol, map[string]string{openstack.KeyStatus: "ok"}); err != nil {
		t.Fatal(err)
	}
	requireMetadata(t, metadataOf(t, openstack.NewMetadata(app), vid), map[string]string{"owner": "ops", "ferry:status": "ok"})

	// A wrong secret fails at login, and says so.
	t.Setenv("OS_CLOUD", "backup-cloud")
	bad := cfg
	bad.CloudsFile = filepath.Join(dir, "clouds.yaml")
	if err := os.WriteFile(filepath.Join(dir, "secure.yaml"), []byte("clouds:\n  backup-cloud:\n    auth:\n      application_credential_secret: wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openstack.Connect(ctx, bad); err == nil || !gophercloud.ResponseCodeIs(err, 401) {
		t.Fatalf("a wrong secret gave %v, want a 401 from Keystone", err)
	}
}

func roleID(t testing.TB, id *gophercloud.ServiceClient, name string) string {
	t.Helper()
	pages, err := roles.List(id, roles.ListOpts{Name: name}).AllPages(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rs, err := roles.ExtractRoles(pages)
	if err != nil || len(rs) != 1 {
		t.Fatalf("role %s: %v %v", name, rs, err)
	}
	return rs[0].ID
}
