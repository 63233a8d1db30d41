package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
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
	metricsListen   string
	logLevel        string
	shutdownTimeout time.Duration
}

// defaultShutdownTimeout is below systemd's TimeoutStopSec (90 s in the
// units), so the daemon says what it waited for before it is killed.
const defaultShutdownTimeout = 60 * time.Second

// register binds --metrics-listen to role's config key (publisher or consumer).
func (f *daemonFlags) register(fs *pflag.FlagSet, role string) {
	fs.StringVar(&f.metricsListen, "metrics-listen", "", "serve Prometheus /metrics on HOST:PORT, e.g. 127.0.0.1:9731 (default: off)")
	fs.StringVar(&f.logLevel, "log-level", defaults.Log.Level, "log level: debug, info, warn or error")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", defaultShutdownTimeout, "after SIGTERM, how long to wait for work in progress before exiting anyway, with status 1 (an import cut off is rolled back at the next start)")
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
	m := metrics.New(conn)
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

	shutdownTimeout time.Duration
	exit            func(code int) // os.Exit; tests replace it
	mu              sync.Mutex
	closing         string      // what close is closing now
	done            bool        // close has returned
	deadline        *time.Timer // armed when the daemon's context ends
	disarm          func() bool // stops run's arming of the deadline
}

// closer is one thing openDaemon opened, named for the shutdown log.
type closer struct {
	name  string
	close func()
}

func openDaemon(name string, cf *cephFlags, nf *natsFlags, df *daemonFlags) (_ *daemon, err error) {
	d := &daemon{shutdownTimeout: df.shutdownTimeout, exit: os.Exit}
	defer func() {
		if err != nil {
			d.close() // what was opened before the failure
		}
	}()
	if d.log, err = df.logger(); err != nil {
		return nil, err
	}
	if d.cluster, err = cf.connect(); err != nil {
		return nil, err
	}
	d.closers = append(d.closers, closer{"the Ceph connection", d.cluster.Close})
	if d.conn, err = nf.connect(name); err != nil {
		return nil, err
	}
	d.closers = append(d.closers, closer{"the NATS connection", d.conn.Close})
	m, srv, err := df.startMetrics(d.conn, d.log)
	if err != nil {
		return nil, err
	}
	if srv != nil {
		d.metrics = m
		d.closers = append(d.closers, closer{"the metrics server", func() { srv.Close() }})
	}
	return d, nil
}

// run runs work until ctx ends, and makes sure the daemon ends:
//   - When the NATS connection is closed for good (the server closed it for
//     a protocol violation, say), work's context ends and run returns an
//     error saying why: a daemon that exited with status 0 then was not
//     restarted by systemd's Restart=on-failure, and backups stopped
//     without an error line. An outage does not close the connection.
//   - When ctx ends (SIGTERM), the shutdown deadline starts: past it, the
//     process exits with status 1 and a log line naming what it still waited
//     for (a handler inside librbd that does not answer, say). An import
//     cut off this way is on record, and the next start rolls it back.
func (d *daemon) run(ctx context.Context, work func(context.Context) error) error {
	d.mu.Lock()
	d.disarm = context.AfterFunc(ctx, d.armDeadline)
	d.mu.Unlock()
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	go func() {
		select {
		case <-d.conn.Closed():
			cancel(bus.ErrConnClosed)
		case <-stopWatch:
		}
	}()
	err := work(wctx)
	if ctx.Err() == nil && d.conn.NC.IsClosed() {
		reason := d.conn.NC.LastError()
		d.log.Error("NATS connection closed for good; exiting with an error so that the service manager starts this daemon again", "reason", reason, "error", err)
		if err == nil {
			err = bus.ErrConnClosed
		}
		return fmt.Errorf("%w (NATS: %v)", err, reason)
	}
	return err
}

// armDeadline starts the shutdown deadline.
func (d *daemon) armDeadline() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done {
		return
	}
	d.log.Info("stopping", "deadline", d.shutdownTimeout)
	d.deadline = time.AfterFunc(d.shutdownTimeout, func() {
		d.log.Error("shutdown deadline passed; exiting without waiting longer", "deadline", d.shutdownTimeout, "waiting_for", d.waitingFor())
		d.exit(1)
	})
}

// waitingFor says what keeps the daemon from ending.
func (d *daemon) waitingFor() string {
	d.mu.Lock()
	closing := d.closing
	d.mu.Unlock()
	if closing != "" {
		return "closing " + closing
	}
	if busy := bus.InFlight(); len(busy) > 0 {
		return "handlers of " + strings.Join(busy, ", ")
	}
	return "the daemon's work to return"
}

// close releases what openDaemon opened, last first, and disarms the
// shutdown deadline once all is closed.
func (d *daemon) close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.mu.Lock()
		d.closing = d.closers[i].name
		d.mu.Unlock()
		d.closers[i].close()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.done, d.closing = true, ""
	if d.disarm != nil {
		d.disarm()
	}
	if d.deadline != nil {
		d.deadline.Stop()
	}
}
