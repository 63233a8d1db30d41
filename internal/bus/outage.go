package bus

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Outage paces a daemon's tries while NATS or the other site cannot be
// reached, and says so in the log: when it begins and since when, on each
// try, and when it is over. The daemon rides it out instead of exiting;
// under systemd an exit would only be a restart loop that fails the same
// way, and snapshot events queue at the source meanwhile.
type Outage struct {
	log   *slog.Logger
	what  string // what is unreachable, for the log
	since time.Time
	pause time.Duration
}

// Outage pauses: the first retry is quick (a restart of NATS), later ones
// slow down to maxOutagePause.
const (
	firstOutagePause = time.Second
	maxOutagePause   = 30 * time.Second
)

// NewOutage returns an Outage for what (say "the backup site").
func NewOutage(log *slog.Logger, what string) *Outage {
	return &Outage{log: log, what: what}
}

// Wait logs err as part of the outage and pauses before the next try. It
// returns false when ctx ended first.
func (o *Outage) Wait(ctx context.Context, err error) bool {
	if o.since.IsZero() {
		o.since, o.pause = time.Now(), firstOutagePause
		o.log.Warn(o.what+" is unreachable; trying again until it is back", "since", o.since.UTC().Format(time.RFC3339), "error", err)
	} else {
		o.log.Warn(o.what+" is still unreachable", "since", o.since.UTC().Format(time.RFC3339),
			"for", time.Since(o.since).Round(time.Second).String(), "next_try_in", o.pause.String(), "error", err)
	}
	t := time.NewTimer(o.pause)
	defer t.Stop()
	o.pause = min(2*o.pause, maxOutagePause)
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Over says that a try got through: an outage on record ends.
func (o *Outage) Over() {
	if o.since.IsZero() {
		return
	}
	o.log.Info(o.what+" is reachable again", "unreachable_since", o.since.UTC().Format(time.RFC3339),
		"for", time.Since(o.since).Round(time.Second).String())
	o.since = time.Time{}
}

// Unreachable tells whether err says that NATS, or the other site's
// JetStream behind it, did not answer (down, restarting, the link between
// the sites cut), rather than that something is wrong with a request.
func Unreachable(err error) bool {
	for _, e := range []error{nats.ErrNoResponders, nats.ErrTimeout, context.DeadlineExceeded, nats.ErrDisconnected,
		nats.ErrConnectionReconnecting, jetstream.ErrNoHeartbeat, jetstream.ErrNoStreamResponse, jetstream.ErrJetStreamNotEnabled, nats.ErrJetStreamNotEnabled} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
