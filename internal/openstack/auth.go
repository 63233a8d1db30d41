package openstack

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/blockstorage/noauth"
	"github.com/gophercloud/gophercloud/v2/openstack/config"
	"github.com/gophercloud/gophercloud/v2/openstack/config/clouds"
)

// Config says how to reach OpenStack. Exactly one way to authenticate is
// used, in this order: a noauth Cinder (NoAuthEndpoint), a clouds.yaml entry
// (Cloud), the OS_* variables of an openrc file (Env).
type Config struct {
	// Cloud names an entry of clouds.yaml (and secure.yaml), as OS_CLOUD does.
	Cloud string
	// CloudsFile is an explicit clouds.yaml path (OS_CLIENT_CONFIG_FILE);
	// empty searches ./, ~/.config/openstack/ and /etc/openstack/.
	CloudsFile string
	// Env holds OS_* settings of an openrc file (see EnvAuth).
	Env *gophercloud.AuthOptions
	// Region and Interface (public, internal, admin) choose the endpoints
	// of the catalog; they override clouds.yaml.
	Region, Interface string
	// CACert is a PEM bundle that verifies the API's TLS certificates, on
	// top of what clouds.yaml says.
	CACert   string
	Insecure bool

	// NoAuthEndpoint is the URL of a Cinder with auth_strategy = noauth,
	// with its version (http://host:8776/v3); NoAuthProject is the project
	// id used in its URLs. There is no Nova in this mode.
	NoAuthEndpoint, NoAuthProject string
}

// ConfigFromEnv reads the variables OpenStack's own clients read: OS_CLOUD
// (with OS_CLIENT_CONFIG_FILE), else OS_AUTH_URL and the rest of an openrc
// file; OS_REGION_NAME, OS_INTERFACE, OS_CACERT, OS_INSECURE in both cases.
func ConfigFromEnv() (Config, error) {
	c := Config{
		Cloud:      os.Getenv("OS_CLOUD"),
		CloudsFile: os.Getenv("OS_CLIENT_CONFIG_FILE"),
		Region:     os.Getenv("OS_REGION_NAME"),
		Interface:  os.Getenv("OS_INTERFACE"),
		CACert:     os.Getenv("OS_CACERT"),
		Insecure:   os.Getenv("OS_INSECURE") == "true" || os.Getenv("OS_INSECURE") == "1",
	}
	if c.Cloud == "" && os.Getenv("OS_AUTH_URL") != "" {
		ao, err := EnvAuth(os.Getenv)
		if err != nil {
			return c, err
		}
		c.Env = &ao
	}
	return c, nil
}

// EnvAuth turns OS_* variables into authentication options. Unlike
// gophercloud's AuthOptionsFromEnv it honours OS_USER_DOMAIN_NAME/ID and
// OS_PROJECT_DOMAIN_NAME/ID, which every Keystone v3 openrc file sets and
// which differ when users and projects live in different domains.
func EnvAuth(getenv func(string) string) (gophercloud.AuthOptions, error) {
	first := func(names ...string) string {
		for _, n := range names {
			if v := getenv(n); v != "" {
				return v
			}
		}
		return ""
	}
	ao := gophercloud.AuthOptions{
		IdentityEndpoint:            getenv("OS_AUTH_URL"),
		Username:                    getenv("OS_USERNAME"),
		UserID:                      first("OS_USER_ID", "OS_USERID"),
		Password:                    getenv("OS_PASSWORD"),
		DomainID:                    first("OS_USER_DOMAIN_ID", "OS_DOMAIN_ID"),
		DomainName:                  first("OS_USER_DOMAIN_NAME", "OS_DOMAIN_NAME"),
		ApplicationCredentialID:     getenv("OS_APPLICATION_CREDENTIAL_ID"),
		ApplicationCredentialName:   getenv("OS_APPLICATION_CREDENTIAL_NAME"),
		ApplicationCredentialSecret: getenv("OS_APPLICATION_CREDENTIAL_SECRET"),
	}
	if ao.IdentityEndpoint == "" {
		return ao, errors.New("OS_AUTH_URL is not set: source your openrc file, or set OS_CLOUD to use clouds.yaml")
	}
	appCred := ao.ApplicationCredentialID != "" || ao.ApplicationCredentialName != ""
	switch {
	case appCred && ao.ApplicationCredentialSecret == "":
		return ao, errors.New("OS_APPLICATION_CREDENTIAL_SECRET is not set for the application credential")
	case appCred:
		// An application credential carries its own scope.
		ao.DomainID, ao.DomainName = "", ""
		if ao.ApplicationCredentialID != "" {
			ao.Username, ao.UserID = "", ""
		}
		return ao, nil
	case ao.Username == "" && ao.UserID == "":
		return ao, errors.New("neither OS_USERNAME nor OS_USER_ID is set")
	case ao.Password == "":
		return ao, errors.New("OS_PASSWORD is not set")
	case ao.Username != "" && ao.DomainID == "" && ao.DomainName == "":
		return ao, errors.New("OS_USER_DOMAIN_NAME (or OS_USER_DOMAIN_ID) is not set: Keystone v3 needs the user's domain")
	}
	projectID := first("OS_PROJECT_ID", "OS_TENANT_ID")
	projectName := first("OS_PROJECT_NAME", "OS_TENANT_NAME")
	switch {
	case projectID != "":
		ao.Scope = &gophercloud.AuthScope{ProjectID: projectID}
	case projectName != "":
		s := &gophercloud.AuthScope{ProjectName: projectName,
			DomainID: getenv("OS_PROJECT_DOMAIN_ID"), DomainName: getenv("OS_PROJECT_DOMAIN_NAME")}
		if s.DomainID == "" && s.DomainName == "" {
			// openrc files of single-domain clouds set only the user's domain.
			s.DomainID, s.DomainName = ao.DomainID, ao.DomainName
		}
		ao.Scope = s
	}
	return ao, nil
}

// Clients are the service clients Ferry uses. Compute is nil with a noauth
// Cinder (no Nova there).
type Clients struct {
	Volume  *gophercloud.ServiceClient // Block Storage v3
	Compute *gophercloud.ServiceClient // Compute v2.1
	// Provider and Endpoints make more service clients; nil with noauth.
	Provider  *gophercloud.ProviderClient
	Endpoints gophercloud.EndpointOpts
}

// Connect authenticates and finds the endpoints. The token is renewed
// whenever it expires (AllowReauth), as a daemon needs.
func Connect(ctx context.Context, c Config) (*Clients, error) {
	if c.NoAuthEndpoint != "" {
		return connectNoAuth(c)
	}
	var (
		ao    gophercloud.AuthOptions
		eo    gophercloud.EndpointOpts
		tlsCf *tls.Config
		err   error
		what  string
	)
	switch {
	case c.Cloud != "":
		what = fmt.Sprintf("cloud %q of clouds.yaml", c.Cloud)
		opts := []clouds.ParseOption{clouds.WithCloudName(c.Cloud)}
		if c.CloudsFile != "" {
			opts = append(opts, clouds.WithLocations(c.CloudsFile))
		}
		if c.Region != "" {
			opts = append(opts, clouds.WithRegion(c.Region))
		}
		if c.Interface != "" {
			opts = append(opts, clouds.WithEndpointType(c.Interface))
		}
		if ao, eo, tlsCf, err = clouds.Parse(opts...); err != nil {
			return nil, fmt.Errorf("read %s: %w", what, err)
		}
	case c.Env != nil:
		what = "OS_* variables (" + c.Env.IdentityEndpoint + ")"
		ao = *c.Env
		eo = gophercloud.EndpointOpts{Region: c.Region, Availability: availability(c.Interface)}
	default:
		return nil, errors.New("no OpenStack credentials: set OS_CLOUD (clouds.yaml), source an openrc file (OS_AUTH_URL...), or use a noauth Cinder endpoint")
	}
	if tlsCf, err = addCA(tlsCf, c.CACert, c.Insecure); err != nil {
		return nil, err
	}
	ao.AllowReauth = true
	var pc *gophercloud.ProviderClient
	if tlsCf != nil {
		pc, err = config.NewProviderClient(ctx, ao, config.WithTLSConfig(tlsCf))
	} else {
		pc, err = config.NewProviderClient(ctx, ao)
	}
	if err != nil {
		return nil, fmt.Errorf("authenticate with %s at %s: %w (check the credentials, and that Keystone is reachable)", what, ao.IdentityEndpoint, err)
	}
	vc, err := openstack.NewBlockStorageV3(pc, eo)
	if err != nil {
		return nil, fmt.Errorf("find the Block Storage v3 endpoint (region %q, interface %q): %w", eo.Region, eo.Availability, err)
	}
	cl := &Clients{Volume: vc, Provider: pc, Endpoints: eo}
	// A cloud without Nova still gets volume statuses.
	if cc, err := openstack.NewComputeV2(pc, eo); err == nil {
		cl.Compute = cc
	}
	return cl, nil
}

func connectNoAuth(c Config) (*Clients, error) {
	if c.NoAuthProject == "" {
		return nil, errors.New("a noauth Cinder needs a project id")
	}
	pc, err := noauth.NewClient(gophercloud.AuthOptions{Username: "ferry", TenantName: c.NoAuthProject})
	if err != nil {
		return nil, err
	}
	tlsCf, err := addCA(nil, c.CACert, c.Insecure)
	if err != nil {
		return nil, err
	}
	pc.HTTPClient = http.Client{}
	if tlsCf != nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = tlsCf
		pc.HTTPClient.Transport = t
	}
	vc, err := noauth.NewBlockStorageNoAuthV3(pc, noauth.EndpointOpts{CinderEndpoint: c.NoAuthEndpoint})
	if err != nil {
		return nil, fmt.Errorf("noauth Cinder at %s: %w", c.NoAuthEndpoint, err)
	}
	return &Clients{Volume: vc}, nil
}

// addCA returns cf (or a new config) trusting the bundle at caFile too.
func addCA(cf *tls.Config, caFile string, insecure bool) (*tls.Config, error) {
	if caFile == "" && !insecure {
		return cf, nil
	}
	if cf == nil {
		cf = &tls.Config{}
	} else {
		cf = cf.Clone()
	}
	if insecure {
		cf.InsecureSkipVerify = true
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA bundle: %w", err)
		}
		if cf.RootCAs == nil {
			if cf.RootCAs, err = x509.SystemCertPool(); err != nil {
				cf.RootCAs = x509.NewCertPool()
			}
		}
		if !cf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA bundle %s holds no PEM certificate", caFile)
		}
	}
	return cf, nil
}

func availability(iface string) gophercloud.Availability {
	switch strings.TrimSuffix(strings.ToLower(iface), "url") {
	case "internal":
		return gophercloud.AvailabilityInternal
	case "admin":
		return gophercloud.AvailabilityAdmin
	default:
		return gophercloud.AvailabilityPublic
	}
}
