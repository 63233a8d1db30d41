package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// PublishSnapshotEvent queues a snapshot for the publisher daemon. The event
// id makes a repeated publish of the same snapshot harmless.
func PublishSnapshotEvent(ctx context.Context, conn *bus.Conn, ev ferry.SnapshotEvent) error {
	raw, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(bus.Subject(bus.SnapshotSubject, ev.Image))
	msg.Data = raw
	if _, err := conn.Source.PublishMsg(ctx, msg, jetstream.WithMsgID(ev.Image.String())); err != nil {
		return fmt.Errorf("publish snapshot event for %s: %w", ev.Image, err)
	}
	return nil
}

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
	stop := bus.KeepAlive(msg, 20*time.Second)
	_, err := p.Backup(ctx, ev, nil)
	stop()
	switch {
	case err == nil || errors.Is(err, ErrAlreadyConfirmed):
		_ = msg.Ack()
	case errors.Is(err, ErrSnapshotGone):
		p.log.Warn("snapshot event dropped", "image", ev.Image.AtSnap("").String(), "snapshot", ev.Image.Snap, "error", err)
		_ = msg.Term()
	case errors.Is(err, ErrLineage):
		p.log.Error("backup refused", "image", ev.Image.AtSnap("").String(), "snapshot", ev.Image.Snap, "error", err)
		_ = msg.Term()
	default:
		p.log.Warn("backup failed; will retry", "image", ev.Image.AtSnap("").String(), "snapshot", ev.Image.Snap, "error", err)
		_ = msg.NakWithDelay(30 * time.Second)
	}
}

func (p *Publisher) handleResult(ctx context.Context, msg jetstream.Msg) {
	defer func() { _ = msg.Ack() }()
	r, err := ferry.DecodeResult(msg.Data()) // a confirmation parses as a failure without Error
	if err != nil {
		p.log.Warn("result dropped", "subject", msg.Subject(), "error", err)
		return
	}
	if r.Error == "" {
		if _, err := p.Prune(ctx, r.Image); err != nil {
			p.log.Error("prune failed", "image", r.Image.String(), "error", err)
		}
		return
	}
	if len(r.MissingChunks) == 0 { // given up
		if _, err := p.DropGivenUp(ctx, r.Image); err != nil {
			p.log.Error("cannot remove the source snapshot of a backup the backup site gave up", "image", r.Image.AtSnap("").String(), "snapshot", r.Image.Snap, "error", err)
		}
		return
	}
	p.log.Warn("backup site lost chunks; sending them again", "image", r.Image.AtSnap("").String(), "backup_id", r.BackupID, "chunks", len(r.MissingChunks))
	if _, err := p.Backup(ctx, ferry.SnapshotEvent{Image: r.Image, Created: time.Now()}, nil); err != nil && !errors.Is(err, ErrAlreadyConfirmed) {
		p.log.Error("resend failed", "image", r.Image.AtSnap("").String(), "backup_id", r.BackupID, "error", err)
	}
}
