package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/sign"
	"github.com/nats-io/nats.go/jetstream"
)

// Run is the publisher daemon: it backs up every snapshot event, prunes
// source snapshots when the backup site confirms, resends chunks the
// backup site reports missing, and applies restore jobs from the backup
// site (restorer.go). It returns when ctx ends.
func (p *Publisher) Run(ctx context.Context) error {
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
	ds := []bus.Dispatcher{{Consumer: events, Handle: p.handleEvent}, {Consumer: results, Handle: p.handleResult}}
	if restores != nil {
		ds = append(ds, bus.Dispatcher{Consumer: restores, Handle: p.handleRestore})
	}
	return bus.DispatchAll(ctx, ds...)
}

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
