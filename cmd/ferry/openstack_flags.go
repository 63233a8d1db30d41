package main

import (
	"cmp"
	"context"

	"github.com/ferry-dr/ferry/internal/openstack"
	"github.com/spf13/pflag"
)

// openstackFlags say how to reach OpenStack; the environment (OS_CLOUD,
// OS_*) supplies the rest, as for the openstack client.
type openstackFlags struct {
	cloud, region, iface, cacert string
	noauthURL, noauthProject     string
}

func (f *openstackFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.cloud, "os-cloud", "", "cloud of clouds.yaml ($OS_CLOUD)")
	fs.StringVar(&f.region, "os-region-name", "", "region ($OS_REGION_NAME)")
	fs.StringVar(&f.iface, "os-interface", "", "endpoint interface: public, internal, admin ($OS_INTERFACE)")
	fs.StringVar(&f.cacert, "os-cacert", "", "CA bundle for the APIs' TLS certificates ($OS_CACERT)")
	fs.StringVar(&f.noauthURL, "cinder-noauth-endpoint", "", "Cinder v3 URL of a noauth Cinder (tests, standalone Cinder); no Nova then")
	fs.StringVar(&f.noauthProject, "cinder-noauth-project", "", "project id for --cinder-noauth-endpoint")
}

func (f *openstackFlags) connect(ctx context.Context) (*openstack.Clients, error) {
	cfg, err := openstack.ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	// Flags beat the environment, as in the openstack client.
	cfg.Cloud = cmp.Or(f.cloud, cfg.Cloud)
	cfg.Region = cmp.Or(f.region, cfg.Region)
	cfg.Interface = cmp.Or(f.iface, cfg.Interface)
	cfg.CACert = cmp.Or(f.cacert, cfg.CACert)
	cfg.NoAuthEndpoint, cfg.NoAuthProject = f.noauthURL, f.noauthProject
	return openstack.Connect(ctx, cfg)
}
