package bus

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamStat is the size of one of Ferry's streams.
type StreamStat struct {
	Stream   string `json:"stream"`
	Domain   string `json:"domain"` // "source" or "backup"
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	Missing  bool   `json:"missing,omitempty"` // not created yet
	Err      string `json:"error,omitempty"`   // could not be read (e.g. the other site is unreachable)
}

// ConsumerStat is how far one of Ferry's durable consumers lags behind.
type ConsumerStat struct {
	Stream   string `json:"stream"`
	Consumer string `json:"consumer"`
	Domain   string `json:"domain"`
	// Pending: messages not delivered yet (the backlog).
	Pending uint64 `json:"num_pending"`
	// AckPending: delivered, not acknowledged yet (in work, or lost with a crashed daemon).
	AckPending int `json:"num_ack_pending"`
	// Redelivered: unacknowledged messages delivered more than once (retries).
	Redelivered int    `json:"num_redelivered"`
	Missing     bool   `json:"missing,omitempty"` // the daemon that creates it never ran
	Err         string `json:"error,omitempty"`
}

// Lag is the state of Ferry's streams and durable consumers. `ferry status
// --streams` prints it; the metrics collector exports it.
type Lag struct {
	Streams   []StreamStat   `json:"streams"`
	Consumers []ConsumerStat `json:"consumers"`
}

// lagTimeout bounds each request, so an unreachable site costs a scrape or
// a status call seconds, not the client's default timeout for every item.
const lagTimeout = 3 * time.Second

// ReadLag reads the info of every stream and durable consumer Ferry uses.
// Failures are recorded per item, never returned: one unreachable domain
// must not hide the other.
func ReadLag(ctx context.Context, c *Conn) Lag { return ReadDomainLag(ctx, c, "") }

// ReadDomainLag is ReadLag of the items of one domain, "source" or
// "backup" ("" for both): each daemon's metrics read their own site's.
func ReadDomainLag(ctx context.Context, c *Conn, domain string) Lag {
	domains := map[string]jetstream.JetStream{"source": c.Source, "backup": c.Backup}
	var lag Lag
	for _, s := range []struct{ stream, domain string }{
		{SnapshotStream, "source"}, {ChunkStream, "backup"}, {ManifestStream, "backup"}, {PageStream, "backup"}, {ResultStream, "backup"}, {RestoreStream, "backup"},
	} {
		if domain != "" && s.domain != domain {
			continue
		}
		st := StreamStat{Stream: s.stream, Domain: s.domain}
		rctx, cancel := context.WithTimeout(ctx, lagTimeout)
		stream, err := domains[s.domain].Stream(rctx, s.stream)
		cancel()
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			st.Missing = true
		case err != nil:
			st.Err = err.Error()
		default:
			info := stream.CachedInfo()
			st.Messages, st.Bytes = info.State.Msgs, info.State.Bytes
		}
		lag.Streams = append(lag.Streams, st)
	}
	for _, d := range []struct{ stream, consumer, domain string }{
		{SnapshotStream, PublisherDurable, "source"}, {ManifestStream, ConsumerDurable, "backup"}, {ResultStream, PrunerDurable, "backup"}, {RestoreStream, RestorerDurable, "backup"},
	} {
		if domain != "" && d.domain != domain {
			continue
		}
		cs := ConsumerStat{Stream: d.stream, Consumer: d.consumer, Domain: d.domain}
		rctx, cancel := context.WithTimeout(ctx, lagTimeout)
		cons, err := domains[d.domain].Consumer(rctx, d.stream, d.consumer)
		cancel()
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound):
			cs.Missing = true
		case err != nil:
			cs.Err = err.Error()
		default:
			info := cons.CachedInfo()
			cs.Pending, cs.AckPending, cs.Redelivered = info.NumPending, info.NumAckPending, info.NumRedelivered
		}
		lag.Consumers = append(lag.Consumers, cs)
	}
	return lag
}
