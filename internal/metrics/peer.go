package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// peerCollector exports whether the other site's JetStream answers, asked
// at scrape time: the publisher asks the backup site for the info of its
// manifest stream, which its permissions allow. An idle daemon learns of
// an outage this way too, before its next backup runs into it.
type peerCollector struct {
	conn *bus.Conn
	role string
}

var peerReachableDesc = prometheus.NewDesc("ferry_peer_reachable",
	"1 if the other site's JetStream answered at this scrape; 0: the link between the sites, or the other site's NATS, is down.", []string{"role"}, nil)

func (c *peerCollector) Describe(ch chan<- *prometheus.Desc) { ch <- peerReachableDesc }

func (c *peerCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), peerTimeout)
	defer cancel()
	_, err := c.conn.Backup.Stream(ctx, bus.ManifestStream)
	up := 0.0
	if err == nil || errors.Is(err, jetstream.ErrStreamNotFound) {
		up = 1 // the site answered; its consumer has not created the stream yet
	}
	ch <- prometheus.MustNewConstMetric(peerReachableDesc, prometheus.GaugeValue, up, c.role)
}

// peerTimeout bounds the question: a cut link answers "no responders" at
// once, a stalled server not at all.
const peerTimeout = 3 * time.Second
