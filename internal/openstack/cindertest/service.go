package cindertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/blockstorage/v3/volumes"
)

// Cinder is a running Cinder: API, scheduler and volume service in one
// process, without authentication (auth_strategy = noauth: the token
// "user:project" is taken at its word, as an admin of that project).
type Cinder struct {
	Dir  string // configuration, database, logs
	URL  string // Block Storage v3 endpoint, without the project: http://127.0.0.1:PORT/v3
	proc *Process
}

// Start writes the configuration into dir, creates the database and starts
// Cinder. It returns once the API answers; the volume service comes up a
// moment later (CreateVolume waits for it).
func Start(ctx context.Context, dir string) (*Cinder, error) {
	if err := checkInstalled("cinder.tests.fake_driver", "keystonemiddleware.auth_token"); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "cinder.conf")
	if err := writeCinderConf(dir, conf, "cinder.log", port, "noauth", nil); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "api-paste.ini"), []byte(apiPaste), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "cinder-all.py"), []byte(launcher), 0o600); err != nil {
		return nil, err
	}
	if err := run(ctx, Python, "/usr/bin/cinder-manage", "--config-file", conf, "db", "sync"); err != nil {
		return nil, fmt.Errorf("create the Cinder database: %w", err)
	}
	// Two processes (this one, and an API with Keystone auth) share the
	// database: WAL keeps readers from failing with "database is locked".
	if err := sqliteWAL(ctx, filepath.Join(dir, "cinder.sqlite")); err != nil {
		return nil, err
	}
	p, err := start("cinder (api+scheduler+volume)", filepath.Join(dir, "cinder.out"),
		[]string{"FERRY_CINDERTEST_SERVICES=all"}, Python, filepath.Join(dir, "cinder-all.py"), "--config-file", conf)
	if err != nil {
		return nil, err
	}
	c := &Cinder{Dir: dir, URL: fmt.Sprintf("http://127.0.0.1:%d/v3", port), proc: p}
	if err := waitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/", port), p); err != nil {
		p.Stop()
		return nil, fmt.Errorf("%w\n(cinder's own log: %s)", err, filepath.Join(dir, "cinder.log"))
	}
	return c, nil
}

// Stop stops Cinder by its pid.
func (c *Cinder) Stop() error { return c.proc.Stop() }

// Log is the path of Cinder's log, for failure messages.
func (c *Cinder) Log() string { return filepath.Join(c.Dir, "cinder.log") }

// StartKeystoneAPI starts a second Cinder API on the same database, this one
// checking Keystone tokens, and registers it in ks's catalog as the
// block-storage v3 endpoint of region RegionOne. Volumes are shared: one
// created through the noauth API in ks's project shows up here.
func (c *Cinder) StartKeystoneAPI(ctx context.Context, ks *Keystone) (*Process, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(c.Dir, "cinder-keystone.conf")
	if err := writeCinderConf(c.Dir, conf, "cinder-keystone.log", port, "keystone", ks); err != nil {
		return nil, err
	}
	p, err := start("cinder-api (keystone)", filepath.Join(c.Dir, "cinder-keystone.out"),
		[]string{"FERRY_CINDERTEST_SERVICES=api"}, Python, filepath.Join(c.Dir, "cinder-all.py"), "--config-file", conf)
	if err != nil {
		return nil, err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := waitHTTP(ctx, base+"/", p); err != nil {
		p.Stop()
		return nil, err
	}
	if err := ks.RegisterEndpoint(ctx, "cinderv3", "block-storage", base+"/v3/$(project_id)s"); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

func writeCinderConf(dir, conf, logName string, port int, auth string, ks *Keystone) error {
	for _, d := range []string{"lock", "coordination"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return err
		}
	}
	return writeTemplate(conf, cinderConf, map[string]any{"Dir": dir, "Log": filepath.Join(dir, logName),
		"Port": port, "Auth": auth, "KS": ks})
}

func sqliteWAL(ctx context.Context, db string) error {
	return run(ctx, Python, "-c", "import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute('PRAGMA journal_mode=WAL')", db)
}

// CreateVolume creates a volume of 1 GiB named name through vc and waits
// until it is available.
func CreateVolume(ctx context.Context, vc *gophercloud.ServiceClient, name string, metadata map[string]string) (string, error) {
	v, err := volumes.Create(ctx, vc, volumes.CreateOpts{Size: 1, Name: name, Metadata: metadata}, nil).Extract()
	if err != nil {
		return "", fmt.Errorf("create volume %s: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		got, err := volumes.Get(ctx, vc, v.ID).Extract()
		if err != nil {
			return "", fmt.Errorf("volume %s: %w", v.ID, err)
		}
		switch got.Status {
		case "available":
			return v.ID, nil
		case "error":
			return "", fmt.Errorf("volume %s went to status error (scheduler or volume service failed: see cinder.log)", v.ID)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("volume %s still %q: %w (is the volume service up? see cinder.log)", v.ID, got.Status, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

const cinderConf = `[DEFAULT]
auth_strategy = {{.Auth}}
transport_url = fake:/
osapi_volume_listen = 127.0.0.1
osapi_volume_listen_port = {{.Port}}
osapi_volume_workers = 1
host = ferrytest
my_ip = 127.0.0.1
state_path = {{.Dir}}
log_file = {{.Log}}
use_stderr = false
api_paste_config = {{.Dir}}/api-paste.ini
enabled_backends = fake
default_volume_type = __DEFAULT__
report_interval = 5
scheduler_driver_init_wait_time = 30

[database]
connection = sqlite:///{{.Dir}}/cinder.sqlite

[oslo_messaging_notifications]
driver = noop

[oslo_concurrency]
lock_path = {{.Dir}}/lock

[coordination]
backend_url = file://{{.Dir}}/coordination

[fake]
volume_driver = cinder.tests.fake_driver.FakeLoggingVolumeDriver
volume_backend_name = fake
{{with .KS}}
[keystone_authtoken]
www_authenticate_uri = {{.AuthURL}}
auth_url = {{.AuthURL}}
auth_type = password
username = admin
password = {{.AdminPassword}}
user_domain_name = Default
project_name = admin
project_domain_name = Default
{{end}}`

// apiPaste is Cinder's own pipeline without the optional middlewares
// (CORS, proxy headers, profiler, healthcheck).
const apiPaste = `[composite:osapi_volume]
use = call:cinder.api:root_app_factory
/: apiversions
/v3: openstack_volume_api_v3

[composite:openstack_volume_api_v3]
use = call:cinder.api.middleware.auth:pipeline_factory
noauth = request_id faultwrap sizelimit noauth apiv3
keystone = request_id faultwrap sizelimit authtoken keystonecontext apiv3
keystone_nolimit = request_id faultwrap sizelimit authtoken keystonecontext apiv3

[filter:request_id]
paste.filter_factory = cinder.api.middleware.request_id:RequestId.factory

[filter:faultwrap]
paste.filter_factory = cinder.api.middleware.fault:FaultWrapper.factory

[filter:sizelimit]
paste.filter_factory = oslo_middleware.sizelimit:RequestBodySizeLimiter.factory

[filter:noauth]
paste.filter_factory = cinder.api.middleware.auth:NoAuthMiddleware.factory

[filter:keystonecontext]
paste.filter_factory = cinder.api.middleware.auth:CinderKeystoneContext.factory

[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory

[app:apiv3]
paste.app_factory = cinder.api.v3.router:APIRouter.factory

[pipeline:apiversions]
pipeline = request_id faultwrap osvolumeversionapp

[app:osvolumeversionapp]
paste.app_factory = cinder.api.versions:Versions.factory
`

// launcher runs Cinder's services in this one process, as cinder-api,
// cinder-scheduler and cinder-volume would each run theirs. It exits when
// its parent (the test binary) is gone.
const launcher = `import eventlet
eventlet.monkey_patch()
import __original_module_threading as orig_threading
import threading
orig_threading.current_thread.__globals__['_active'] = threading._active

import os
import sys

from oslo_config import cfg
from oslo_log import log as logging
from oslo_service import service as oslo_service

from cinder import i18n
i18n.enable_lazy()
from cinder.common import config
from cinder.common import constants
from cinder import coordination
from cinder import objects
from cinder import rpc
from cinder import service
from cinder import utils
from cinder import version

CONF = cfg.CONF


def watch_parent(ppid):
    while os.getppid() == ppid:
        eventlet.sleep(1)
    os._exit(1)


def main():
    ppid = os.getppid()
    objects.register_all()
    CONF(sys.argv[1:], project='cinder', version=version.version_string())
    config.set_middleware_defaults()
    logging.setup(CONF, 'cinder')
    utils.monkey_patch()
    coordination.COORDINATOR.start()
    rpc.init(CONF)
    launcher = oslo_service.ServiceLauncher(CONF, restart_method='mutate')
    launcher.launch_service(service.WSGIService('osapi_volume'))
    if os.environ.get('FERRY_CINDERTEST_SERVICES') == 'all':
        launcher.launch_service(service.Service.create(binary=constants.SCHEDULER_BINARY))
        launcher.launch_service(service.Service.create(
            host=CONF.host + '@fake', service_name='fake',
            binary=constants.VOLUME_BINARY, coordination=True))
    eventlet.spawn(watch_parent, ppid)
    launcher.wait()


main()
`
