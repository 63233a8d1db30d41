package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/state"
	"github.com/prometheus/client_golang/prometheus"
)

// siteCollector exports the backup site's figures from the consumer that
// holds the site's lock: whether it does, each image's recovery point
// from the state bucket, and the backup domain's streams. Every consumer
// exports its own given-up counts, for every image the state bucket knows.
type siteCollector struct {
	conn    *bus.Conn
	givenUp *givenUp
	lag     lagCollector
}

var (
	rpoDesc = prometheus.NewDesc("ferry_image_rpo_seconds",
		"Age of the image's newest backup confirmed by the backup site (the recovery point).", []string{"image"}, nil)
	lastSuccessDesc = prometheus.NewDesc("ferry_image_last_success_timestamp_seconds",
		"When the backup site last confirmed a backup of the image.", []string{"image"}, nil)
	failingDesc = prometheus.NewDesc("ferry_image_failing",
		"1 if the image's last backup attempt failed (ferry status shows why).", []string{"image"}, nil)
	stateUpDesc = prometheus.NewDesc("ferry_state_up",
		"1 if the state bucket could be read at this scrape.", nil, nil)
	consumerActiveDesc = prometheus.NewDesc("ferry_consumer_active",
		"1 if this consumer holds the backup site's lock and applies its backups; 0: it stands by, or cannot reach NATS.", nil, nil)
	givenUpDesc = prometheus.NewDesc("ferry_backups_given_up_total",
		"Backups the consumer stopped retrying: an operator must act (see ferry status).", []string{"image", "reason"}, nil)
)

func (c *siteCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{rpoDesc, lastSuccessDesc, failingDesc, stateUpDesc, consumerActiveDesc} {
		ch <- d
	}
	c.givenUp.Describe(ch)
	c.lag.Describe(ch)
}

func (c *siteCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	active := 0.0
	if held, err := bus.HeldHere(ctx, c.conn.Backup, bus.ConsumerLock); err == nil && held {
		active = 1
	}
	ch <- prometheus.MustNewConstMetric(consumerActiveDesc, prometheus.GaugeValue, active)
	states, err := readStates(ctx, c.conn)
	for _, s := range states {
		c.givenUp.know(s.Image.String())
	}
	c.givenUp.Collect(ch)
	if active == 0 {
		return // the active consumer exports the site's figures
	}
	if err != nil {
		ch <- prometheus.MustNewConstMetric(stateUpDesc, prometheus.GaugeValue, 0)
	} else {
		ch <- prometheus.MustNewConstMetric(stateUpDesc, prometheus.GaugeValue, 1)
		collectImages(ch, states, time.Now())
	}
	c.lag.Collect(ch)
}

func collectImages(ch chan<- prometheus.Metric, states []*ferry.ImageState, now time.Time) {
	for _, s := range states {
		img := s.Image.String()
		failing := 0.0
		if s.Status == ferry.StatusFailed {
			failing = 1
		}
		ch <- prometheus.MustNewConstMetric(failingDesc, prometheus.GaugeValue, failing, img)
		if s.LastSuccess.IsZero() {
			continue // never backed up: no recovery point (ferry_image_failing tells)
		}
		ch <- prometheus.MustNewConstMetric(lastSuccessDesc, prometheus.GaugeValue, float64(s.LastSuccess.UnixNano())/1e9, img)
		ch <- prometheus.MustNewConstMetric(rpoDesc, prometheus.GaugeValue, now.Sub(s.LastSuccess).Seconds(), img)
	}
}

func readStates(ctx context.Context, conn *bus.Conn) ([]*ferry.ImageState, error) {
	book, err := state.Open(ctx, conn.Backup)
	if err != nil {
		return nil, err
	}
	return book.All(ctx)
}

// givenUp counts the backups a consumer gave up, by image and reason. Each
// image it has known is exported with every reason, at zero until a
// give-up: a series born at 1 would not count as an increase.
type givenUp struct {
	reasons []string

	mu     sync.Mutex
	counts map[string]map[string]float64 // image -> reason -> count
}

func newGivenUp(reasons []string) *givenUp {
	return &givenUp{reasons: reasons, counts: map[string]map[string]float64{}}
}

// know adds img to the images exported, at zero.
func (g *givenUp) know(img string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.counts[img] == nil {
		g.counts[img] = map[string]float64{}
		for _, r := range g.reasons {
			g.counts[img][r] = 0
		}
	}
}

func (g *givenUp) inc(img, reason string) {
	g.know(img)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.counts[img][reason]++
}

func (g *givenUp) Describe(ch chan<- *prometheus.Desc) { ch <- givenUpDesc }

func (g *givenUp) Collect(ch chan<- prometheus.Metric) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for img, byReason := range g.counts {
		for r, n := range byReason {
			ch <- prometheus.MustNewConstMetric(givenUpDesc, prometheus.CounterValue, n, img, r)
		}
	}
}
