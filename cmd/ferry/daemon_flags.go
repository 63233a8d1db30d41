package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ferry-dr/ferry/consumer"
	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/metrics"
	"github.com/ferry-dr/ferry/publisher"
	"github.com/spf13/pflag"
)

// Both daemons report to the same metrics.
var (
	_ publisher.Observer = (*metrics.Metrics)(nil)
	_ consumer.Observer  = (*metrics.Metrics)(nil)
)

// daemonFlags are what a long-running daemon takes besides its work:
// where to serve /metrics, how much to log and how long to stop.
type daemonFlags struct {
	role            string // publisher or consumer
	metricsListen   string
	logLevel        string
	shutdownTimeout time.Duration
}

// register binds --metrics-listen to role's config key (publisher or consumer).
func (f *daemonFlags) register(fs *pflag.FlagSet, role string) {
	f.role = role
	fs.StringVar(&f.metricsListen, "metrics-listen", "", "serve Prometheus /metrics on HOST:PORT, e.g. 127.0.0.1:9731 (default: off)")
	fs.StringVar(&f.logLevel, "log-level", defaults.Log.Level, "log level: debug, info, warn or error")
	registerShutdownTimeout(fs, &f.shutdownTimeout)
	bindConfig(fs, "metrics-listen", role+".metrics_listen")
	bindConfig(fs, "log-level", "log.level")
}

func (f *daemonFlags) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", f.logLevel)
	}
	return newLogger(level), nil
}

// startMetrics serves /metrics when asked to; the caller closes the server.
// Without --metrics-listen it returns nil metrics (no observer) and a nil server.
func (f *daemonFlags) startMetrics(conn *bus.Conn, log *slog.Logger) (*metrics.Metrics, *metrics.Server, error) {
	if f.metricsListen == "" {
		return nil, nil, nil
	}
	reasons := map[string][]string{metrics.RolePublisher: publisher.Reasons(), metrics.RoleConsumer: consumer.Reasons()}
	m := metrics.New(conn, metrics.Role{Name: f.role, Reasons: reasons[f.role]})
	srv, err := m.Listen(f.metricsListen)
	if err != nil {
		return nil, nil, fmt.Errorf("serve metrics on %s: %w (is another daemon using the port? set --metrics-listen)", f.metricsListen, err)
	}
	log.Info("serving metrics", "url", "http://"+srv.Addr()+"/metrics")
	return m, srv, nil
}

// daemon is what both daemons open before they work: a logger, their Ceph
// cluster, NATS, and /metrics when asked for.
type daemon struct {
	log     *slog.Logger
	cluster *ceph.Cluster
	conn    *bus.Conn
	metrics *metrics.Metrics // nil without --metrics-listen
	closers []closer
	life    lifeline // ends the daemon when NATS is gone, or it does not stop
}

// closer is one thing openDaemon opened, named for the shutdown log.
type closer struct {
	name  string
	close func()
}

func openDaemon(name string, cf *cephFlags, nf *natsFlags, df *daemonFlags) (_ *daemon, err error) {
	d := &daemon{life: lifeline{timeout: df.shutdownTimeout}}
	defer func() {
		if err != nil {
			d.close() // what was opened before the failure
		}
	}()
	if d.log, err = df.logger(); err != nil {
		return nil, err
	}
	d.life.log = d.log
	if d.cluster, err = cf.connect(); err != nil {
		return nil, err
	}
	d.closers = append(d.closers, closer{"the Ceph connection", d.cluster.Close})
	if d.conn, err = nf.connectDaemon(name, d.log); err != nil {
		return nil, err
	}
	d.closers = append(d.closers, closer{"the NATS connection", d.conn.Close})
	d.life.conn = d.conn
	m, srv, err := df.startMetrics(d.conn, d.log)
	if err != nil {
		return nil, err
	}
	if srv != nil {
		d.metrics = m
		d.closers = append(d.closers, closer{"the metrics server", func() { _ = srv.Close() }})
	}
	return d, nil
}

// close releases what openDaemon opened, last first, and disarms the
// shutdown deadline once all is closed.
func (d *daemon) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.life.closingNow(d.closers[i].name)
		d.closers[i].close()
	}
	d.life.finish()
}

// run runs the daemon's work until ctx ends (see lifeline).
func (d *daemon) run(ctx context.Context, work func(context.Context) error) error {
	return d.life.run(ctx, work)
}
