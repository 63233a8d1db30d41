// Package metrics exports Ferry's Prometheus metrics on /metrics, and
// ferry backup's in a node_exporter textfile.
//
// Each series comes from the one daemon that owns its fact, so that sums
// over both daemons' scrapes are right: counters from the daemon that did
// the work (labelled with its role), the source site's JetStream figures
// from the publisher, and the backup site's (its streams, the state
// bucket's images, the given-up counts) from the consumer that holds the
// site's lock; its standbys export only their own counters. The gauges
// are read at scrape time from what JetStream already knows, so they are
// right even for work done by another process.
//
// The names are listed, with the questions they answer, in docs/operations.md;
// packaging/grafana-dashboard.json plots them and
// packaging/prometheus/ferry-alerts.yml alerts on them.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Roles label the daemon a figure comes from.
const (
	RolePublisher = "publisher"
	RoleConsumer  = "consumer"
)

// Role is the daemon whose metrics these are.
type Role struct {
	Name string // RolePublisher or RoleConsumer
	// Reasons are the daemon's failure reasons: each reason's counters
	// exist at zero from the first scrape, so an alert on their increase
	// fires for the first failure after a start.
	Reasons []string
}

// kinds of backups, a label of ferry_backups_total.
var kinds = []string{"full", "incremental"}

// Metrics holds Ferry's metrics in their own registry.
type Metrics struct {
	reg  *prometheus.Registry
	role string

	backups     *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	failures    *prometheus.CounterVec
	givenUp     *givenUp // consumer
	changed     prometheus.Counter
	read        prometheus.Counter
	rawSent     prometheus.Counter
	sent        prometheus.Counter
	extentSent  prometheus.Counter
	chunks      prometheus.Counter
	chunksSent  prometheus.Counter
	appliedData prometheus.Counter // consumer
}

// New creates the metrics of role. With conn set, scrapes also read the
// role's site through it (conn must outlive the Metrics).
func New(conn *bus.Conn, role Role) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), role: role.Name}
	m.backups = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferry_backups_total",
		Help: "Backups sent (publisher) or applied and confirmed (consumer), by kind (full or incremental)."}, []string{"role", "kind"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ferry_backup_duration_seconds",
		Help:    "Time to send one backup (publisher: diff, chunk, dedup, compress, store) or to apply it (consumer).",
		Buckets: prometheus.ExponentialBuckets(0.25, 2, 14)}, []string{"role"}) // 0.25 s .. ~34 min
	m.failures = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferry_backup_failures_total",
		Help: "Failed backup attempts, by reason; most are retried."}, []string{"role", "reason"})
	m.reg.MustRegister(m.backups, m.duration, m.failures)
	for _, k := range kinds {
		m.backups.WithLabelValues(role.Name, k)
	}
	m.duration.WithLabelValues(role.Name)
	for _, r := range role.Reasons {
		m.failures.WithLabelValues(role.Name, r)
	}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.reg.MustRegister(buildInfo())

	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		m.reg.MustRegister(c)
		return c
	}
	switch role.Name {
	case RolePublisher:
		m.changed = counter("ferry_backup_changed_bytes_total", "Bytes the sent diffs cover, data and zeros.")
		m.read = counter("ferry_backup_read_bytes_total", "Bytes of data read from source images.")
		m.rawSent = counter("ferry_backup_chunk_raw_bytes_sent_total", "Bytes of the chunks sent, before compression (read / this = dedup ratio).")
		m.sent = counter("ferry_backup_bytes_sent_total", "Compressed bytes sent to the backup site: chunks and extent lists.")
		m.extentSent = counter("ferry_backup_extent_bytes_sent_total", "Of ferry_backup_bytes_sent_total, the extent lists.")
		m.chunks = counter("ferry_backup_chunks_total", "Chunks the sent backups reference.")
		m.chunksSent = counter("ferry_backup_chunks_sent_total", "Chunks sent because the backup site lacked them.")
		if conn != nil {
			m.reg.MustRegister(&lagCollector{conn: conn, domain: "source"}, &peerCollector{conn: conn, role: role.Name})
		}
	case RoleConsumer:
		m.appliedData = counter("ferry_backup_applied_bytes_total", "Bytes of data written to backup images.")
		m.givenUp = newGivenUp(role.Reasons)
		if conn != nil {
			m.reg.MustRegister(&siteCollector{conn: conn, givenUp: m.givenUp, lag: lagCollector{conn: conn, domain: "backup"}})
		}
	}
	return m
}

// Registry is where the metrics live, for tests and for embedding.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

func kind(man *ferry.Manifest) string {
	if man.FromSnap == "" {
		return kinds[0]
	}
	return kinds[1]
}

// BackupSent is the publisher's report of a backup sent, with its figures.
func (m *Metrics) BackupSent(man *ferry.Manifest, s ferry.BackupStats) {
	m.backups.WithLabelValues(RolePublisher, kind(man)).Inc()
	m.duration.WithLabelValues(RolePublisher).Observe(s.DurationSeconds)
	m.changed.Add(float64(s.ChangedBytes))
	m.read.Add(float64(s.DataBytes))
	m.rawSent.Add(float64(s.RawBytesSent))
	m.sent.Add(float64(s.BytesSent))
	m.extentSent.Add(float64(s.ExtentBytesSent))
	m.chunks.Add(float64(s.Chunks))
	m.chunksSent.Add(float64(s.ChunksSent))
}

// SendFailed is the publisher's report of a backup attempt that failed.
func (m *Metrics) SendFailed(_ ferry.ImageSpec, reason string) {
	m.failures.WithLabelValues(RolePublisher, reason).Inc()
}

// BackupApplied is the consumer's report of a backup applied and confirmed.
func (m *Metrics) BackupApplied(man *ferry.Manifest, s ferry.BackupStats, took time.Duration) {
	m.backups.WithLabelValues(RoleConsumer, kind(man)).Inc()
	m.duration.WithLabelValues(RoleConsumer).Observe(took.Seconds())
	m.appliedData.Add(float64(s.DataBytes))
}

// ApplyFailed is the consumer's report of a failed attempt; final when it
// stopped retrying.
func (m *Metrics) ApplyFailed(man *ferry.Manifest, reason string, final bool) {
	m.failures.WithLabelValues(RoleConsumer, reason).Inc()
	if final {
		m.givenUp.inc(man.Image.AtSnap("").String(), reason)
	}
}

// scrapeTimeout bounds what one scrape spends reading JetStream.
const scrapeTimeout = 5 * time.Second

// lagCollector exports bus.ReadDomainLag of one domain at scrape time: each
// site's daemon reads its own, which it reaches even when the other site
// does not answer.
type lagCollector struct {
	conn   *bus.Conn
	domain string
}

var (
	streamMsgsDesc = prometheus.NewDesc("ferry_jetstream_stream_messages",
		"Messages stored in a Ferry stream.", []string{"stream", "domain"}, nil)
	streamBytesDesc = prometheus.NewDesc("ferry_jetstream_stream_bytes",
		"Bytes stored in a Ferry stream.", []string{"stream", "domain"}, nil)
	pendingDesc = prometheus.NewDesc("ferry_jetstream_consumer_pending_messages",
		"Messages a durable consumer has not been delivered yet (num_pending: the backlog).", []string{"stream", "consumer"}, nil)
	ackPendingDesc = prometheus.NewDesc("ferry_jetstream_consumer_ack_pending_messages",
		"Messages delivered to a durable consumer and not acknowledged yet (num_ack_pending).", []string{"stream", "consumer"}, nil)
	redeliveredDesc = prometheus.NewDesc("ferry_jetstream_consumer_redelivered_messages",
		"Unacknowledged messages delivered more than once (num_redelivered: retries in progress).", []string{"stream", "consumer"}, nil)
	jsUpDesc = prometheus.NewDesc("ferry_jetstream_up",
		"1 if every Ferry stream and consumer of the domain that exists could be read at this scrape.", []string{"domain"}, nil)
)

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{streamMsgsDesc, streamBytesDesc, pendingDesc, ackPendingDesc, redeliveredDesc, jsUpDesc} {
		ch <- d
	}
}

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	lag := bus.ReadDomainLag(ctx, c.conn, c.domain)
	up := 1.0
	for _, s := range lag.Streams {
		if s.Err != "" {
			up = 0
		}
		if s.Missing || s.Err != "" {
			continue
		}
		ch <- prometheus.MustNewConstMetric(streamMsgsDesc, prometheus.GaugeValue, float64(s.Messages), s.Stream, s.Domain)
		ch <- prometheus.MustNewConstMetric(streamBytesDesc, prometheus.GaugeValue, float64(s.Bytes), s.Stream, s.Domain)
	}
	for _, cs := range lag.Consumers {
		if cs.Err != "" {
			up = 0
		}
		if cs.Missing || cs.Err != "" {
			continue
		}
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(cs.Pending), cs.Stream, cs.Consumer)
		ch <- prometheus.MustNewConstMetric(ackPendingDesc, prometheus.GaugeValue, float64(cs.AckPending), cs.Stream, cs.Consumer)
		ch <- prometheus.MustNewConstMetric(redeliveredDesc, prometheus.GaugeValue, float64(cs.Redelivered), cs.Stream, cs.Consumer)
	}
	ch <- prometheus.MustNewConstMetric(jsUpDesc, prometheus.GaugeValue, up, c.domain)
}

// Server serves /metrics until Close.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

// Listen binds addr (HOST:PORT; port 0 picks a free one) and serves /metrics
// in a goroutine the Server owns. Binding errors come back at once.
func (m *Metrics) Listen(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln: ln, done: make(chan error, 1)}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server and waits for its goroutine.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serveErr := <-s.done; !errors.Is(serveErr, http.ErrServerClosed) && err == nil {
		err = serveErr
	}
	return err
}
