package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/sign"
	"github.com/nats-io/nats.go/jetstream"
)

// Run is the publisher daemon: it backs up every snapshot event, prunes
// source snapshots when the backup site confirms, resends chunks the
// backup site reports missing, and applies restore jobs from the backup
// site (restorer.go). It returns when ctx ends, or when its NATS
// connection is closed for good. An outage of the backup site or of NATS
// is ridden out: snapshot events queue at the source meanwhile, the log
// says what is unreachable and since when, and the daemon carries on by
// itself when it is back.
func (p *Publisher) Run(ctx context.Context) error {
	out := bus.NewOutage(p.log, "the backup site or NATS")
	for {
		err := p.run(ctx, out)
		if err == nil || ctx.Err() != nil || p.bus.NC.IsClosed() {
			return err
		}
		if !out.Wait(ctx, err) {
			return nil
		}
	}
}

func (p *Publisher) run(ctx context.Context, out *bus.Outage) error {
	if err := bus.SetupSource(ctx, p.bus.Source, bus.DefaultRetention); err != nil {
		return err
	}
	events, err := p.bus.Source.CreateOrUpdateConsumer(ctx, bus.SnapshotStream, jetstream.ConsumerConfig{
		Durable:    bus.PublisherDurable,
		AckPolicy:  jetstream.AckExplicitPolicy,
		AckWait:    60 * time.Second,
		MaxDeliver: -1,
	})
	if err != nil {
		return fmt.Errorf("create consumer %s on %s: %w", bus.PublisherDurable, bus.SnapshotStream, err)
	}
	results, err := p.bus.Backup.CreateOrUpdateConsumer(ctx, bus.ResultStream, jetstream.ConsumerConfig{
		Durable:       bus.PrunerDurable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverNewPolicy,
		// Backup results only: restore outcomes are for ferry restore.
		FilterSubjects: []string{bus.ConfirmedSubject + ".>", bus.FailedSubject + ".>"},
	})
	if err != nil {
		return fmt.Errorf("create consumer %s on %s: %w", bus.PrunerDurable, bus.ResultStream, err)
	}
	if p.trust.Open() || p.restore.Open() {
		p.log.Warn("messages are not authenticated: no trusted backup site or restore key is configured, so anyone who can publish on the bus can have source snapshots removed or restores written into this site; set publisher.trusted_keys and publisher.restore_keys (see docs/security.md)")
	}
	restores, err := p.restoreJobs(ctx)
	if err != nil {
		return err
	}
	out.Over()
	ds := []bus.Dispatcher{{Consumer: events, Handle: p.handleEvent}, {Consumer: results, Handle: p.handleResult}}
	if restores != nil {
		ds = append(ds, bus.Dispatcher{Consumer: restores, Handle: p.handleRestore})
	}
	return bus.DispatchAll(ctx, ds...)
}

// inFlightRetry is the pause of a snapshot event that waits for the first
// backup of its image (fullInFlight).
const inFlightRetry = 5 * time.Second

func (p *Publisher) handleEvent(ctx context.Context, msg jetstream.Msg) {
	var ev ferry.SnapshotEvent
	if err := json.Unmarshal(msg.Data(), &ev); err != nil || ev.Image.Snap == "" {
		p.log.Error("snapshot event does not parse; dropping it", "subject", msg.Subject(), "error", err)
		_ = msg.Term()
		return
	}
	if err := bus.Refusal(msg.Subject(), ev.Image, ev.Image.Validate(), bus.SnapshotSubject); err != nil {
		p.log.Error("snapshot event refused; dropping it", "subject", msg.Subject(), "error", err)
		_ = msg.Term()
		return
	}
	if wait, err := p.fullInFlight(ctx, ev); err != nil || wait {
		if err == nil {
			p.log.Info("backup waits for the first backup of the image, still on its way, so as to be an incremental from it", "image", ev.Image.AtSnap("").String(), "snapshot", ev.Image.Snap)
		} else {
			p.log.Warn("backup waits: cannot tell whether an earlier backup of the image is on its way", "image", ev.Image.AtSnap("").String(), "snapshot", ev.Image.Snap, "error", err)
		}
		_ = msg.NakWithDelay(inFlightRetry)
		return
	}
	stop := bus.KeepAlive(msg, 20*time.Second)
	_, err := p.Backup(ctx, ev, nil)
	stop()
	switch {
	case err == nil || errors.Is(err, ErrAlreadyConfirmed):
		_ = msg.Ack()
	case errors.Is(err, ErrSnapshotGone):
		p.log.Warn("snapshot event dropped", "image", ev.Image.AtSnap("").String(), "snapshot", ev.Image.Snap, "error", err)
		_ = msg.Term()
	case errors.Is(err, ErrLineage), errors.Is(err, ErrNotExported):
		p.log.Error("backup refused", "image", ev.Image.AtSnap("").String(), "snapshot", ev.Image.Snap, "error", err)
		_ = msg.Term()
	default:
		p.log.Warn("backup failed; will retry", "image", ev.Image.AtSnap("").String(), "snapshot", ev.Image.Snap, "error", err)
		_ = msg.NakWithDelay(30 * time.Second)
	}
}

func (p *Publisher) handleResult(ctx context.Context, msg jetstream.Msg) {
	defer func() { _ = msg.Ack() }()
	r, err := bus.DecodeResult(msg.Subject(), msg.Headers(), msg.Data(), p.trust)
	if err != nil {
		p.log.Error("backup result dropped; nothing done", "subject", msg.Subject(), "signed_by", sign.Signed(msg.Headers()), "error", err)
		return
	}
	if _, err := p.onResult(ctx, r); err != nil {
		p.log.Error("cannot act on the backup site's result", "image", r.Image.AtSnap("").String(), "snapshot", r.Image.Snap,
			"backup_id", r.BackupID, "result", r.Kind, "error", err)
	}
}

// Open is New for the daemon: while the backup site cannot be reached, or
// has no streams or buckets yet (its consumer, which creates them, has not
// run yet, or is creating them),
// it says so and tries again, instead of failing at once (under systemd, a
// restart loop). It fails only for other errors, or when ctx ends.
func Open(ctx context.Context, cluster *ceph.Cluster, conn *bus.Conn, o Options) (*Publisher, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	out := bus.NewOutage(o.Log, "the backup site")
	for {
		p, err := New(ctx, cluster, conn, o)
		wait := bus.Unreachable(err) || errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound)
		if err == nil || !wait || conn.NC.IsClosed() {
			out.Over()
			return p, err
		}
		if !out.Wait(ctx, err) {
			return nil, ctx.Err()
		}
	}
}
