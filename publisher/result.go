package publisher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/sign"
	"github.com/nats-io/nats.go/jetstream"
)

// The backup site answers each backup on FERRY_RESULTS. Every answer the
// source site acts on goes through onResult: the daemon's for all backups
// (run.go), BackupOnce's for its own.

// onResult acts on a backup result: a confirmation prunes the image's
// snapshots that are no base any more, a give-up removes the backup's
// snapshot, and missing chunks are sent again by sending the backup again
// as it was. It returns the snapshots pruned.
func (p *Publisher) onResult(ctx context.Context, r ferry.BackupResult) ([]string, error) {
	switch r.Kind {
	case ferry.ResultConfirmed:
		pruned, err := p.pruneConfirmed(ctx, r)
		if err != nil {
			return pruned, fmt.Errorf("backup %s confirmed, but pruning failed: %w", r.BackupID, err)
		}
		return pruned, nil
	case ferry.ResultGivenUp:
		if _, err := p.DropGivenUp(ctx, r.Image); err != nil {
			return nil, fmt.Errorf("remove the source snapshot %s of backup %s, which the backup site gave up: %w", r.Image, r.BackupID, err)
		}
		return nil, nil
	case ferry.ResultChunksMissing:
		p.log.Warn("backup site lost chunks; sending them again", "image", r.Image.AtSnap("").String(), "snapshot", r.Image.Snap, "backup_id", r.BackupID, "chunks", len(r.MissingChunks))
		if _, err := p.Backup(ctx, resendEvent(r), nil); err != nil && !errors.Is(err, ErrAlreadyConfirmed) {
			return nil, fmt.Errorf("resend chunks of %s: %w", r.BackupID, err)
		}
		return nil, nil
	}
	return nil, fmt.Errorf("backup result of %s: unknown kind %q", r.BackupID, r.Kind)
}

// pruneConfirmed prunes on the strength of the (authenticated) result
// alone: the backup site holds r's snapshot, so the Ferry snapshots before
// it are no base any more. The state bucket, which anyone on the bus can
// write, is not asked. A result of an older Ferry, without its manifest,
// is pruned by the state (Prune).
func (p *Publisher) pruneConfirmed(ctx context.Context, r ferry.BackupResult) ([]string, error) {
	if r.Manifest == nil {
		return p.Prune(ctx, r.Image)
	}
	img := r.Image.AtSnap("")
	info, err := p.ceph.Info(img)
	if err != nil {
		return nil, err
	}
	if r.Manifest.SourceImageID != info.ID {
		return nil, nil // another image's chain: its confirmations say nothing about this one
	}
	return p.pruneWhere(img, func(s string) bool { return s == r.Image.Snap })
}

// resendEvent turns the backup a result is about back into the event that
// sends it again as it was: same snapshot, consistency, identity, resync
// and force-rollback. A result of an older Ferry lacks its manifest: then
// only the snapshot is known.
func resendEvent(r ferry.BackupResult) ferry.SnapshotEvent {
	m := r.Manifest
	if m == nil {
		return ferry.SnapshotEvent{Image: r.Image, Created: time.Now().UTC()}
	}
	return ferry.SnapshotEvent{Image: m.Image, Consistency: m.Consistency, Resync: m.Resync, ForceRollback: m.ForceRollback,
		Created: m.Created, VolumeID: m.VolumeID, InstanceID: m.InstanceID}
}

// WaitConfirmed waits until the backup site confirms m, resending chunks it
// reports missing. It returns the state the backup site recorded, or
// ErrGivenUp. Pruning, and removing the snapshot of a backup given up, are
// left to the caller (BackupOnce and the daemon do both).
func (p *Publisher) WaitConfirmed(ctx context.Context, m *Sent) (*ferry.ImageState, error) {
	r, err := p.waitResult(ctx, m, nil)
	if err != nil {
		return nil, err
	}
	return p.verdict(ctx, r)
}

// verdict is what a final result means to the backup's sender.
func (p *Publisher) verdict(ctx context.Context, r ferry.BackupResult) (*ferry.ImageState, error) {
	if r.Kind == ferry.ResultGivenUp {
		return nil, fmt.Errorf("%w on %s: %s", ErrGivenUp, r.BackupID, r.Error)
	}
	return p.book.Get(ctx, r.Image)
}

// waitResult waits for the backup site's last word on m, a confirmation or
// a give-up, and returns it. Reports of missing chunks on the way go through
// onResult, which sends them again. l, if not nil, is a listener opened
// ahead for m (ahead.listener); waitResult stops it.
func (p *Publisher) waitResult(ctx context.Context, m *Sent, l *resultListener) (ferry.BackupResult, error) {
	confirmed := ferry.BackupResult{Kind: ferry.ResultConfirmed, BackupID: m.BackupID, Image: m.Image, Manifest: &m.Manifest}
	// The confirmation may have come before we started listening. Results
	// from ResultsFrom on are read anyway, so then the state is read beside
	// the listener's creation, a round trip less across a WAN; a listener
	// opened ahead reads them too, and needs no state. With trusted keys,
	// the state (which anyone on the bus can write) is not taken for a
	// confirmation while the signed results can be read from where this try
	// began.
	useState := l == nil && (p.trust.Open() || m.ResultsFrom == 0)
	got := make(chan stateErr, 1)
	readState := func() { st, err := p.book.Get(ctx, m.Image); got <- stateErr{st, err} }
	if useState && m.ResultsFrom > 0 {
		go readState()
	}
	if l == nil {
		var err error
		if l, err = p.listenResults(ctx, m.Image, m.ResultsFrom); err != nil {
			return ferry.BackupResult{}, err
		}
	}
	msgs := l.msgs
	defer msgs.Stop()
	go func() { <-ctx.Done(); msgs.Stop() }()
	if useState {
		if m.ResultsFrom == 0 {
			readState()
		}
		if s := <-got; s.err != nil {
			return ferry.BackupResult{}, s.err
		} else if s.st != nil && s.st.SourceImageID == m.SourceImageID && s.st.HasConfirmed(m.ToSnap) {
			return confirmed, nil
		}
	}
	var refused error // the last result refused for its signature: the news if the wait ends
	for {
		msg, err := msgs.Next()
		if err != nil {
			if ctx.Err() != nil && refused != nil {
				return ferry.BackupResult{}, fmt.Errorf("%w; results refused meanwhile: %w", ctx.Err(), refused)
			}
			if ctx.Err() != nil {
				return ferry.BackupResult{}, ctx.Err()
			}
			return ferry.BackupResult{}, err
		}
		r, err := bus.DecodeResult(msg.Subject(), msg.Headers(), msg.Data(), p.trust)
		if errors.Is(err, sign.ErrUnauthenticated) {
			p.log.Error("backup result refused while waiting; nothing done", "backup_id", m.BackupID, "signed_by", sign.Signed(msg.Headers()), "error", err)
			refused = err
			continue
		}
		if err != nil || r.BackupID != m.BackupID {
			continue
		}
		if r.Manifest == nil {
			r.Manifest = &m.Manifest // an older backup site's result
		}
		if r.Kind != ferry.ResultChunksMissing {
			return r, nil
		}
		if _, err := p.onResult(ctx, r); err != nil {
			return ferry.BackupResult{}, err
		}
	}
}

// listenResults opens a listener on the backup site's answers about img,
// from the sequence from of FERRY_RESULTS on (0: from now on). The backup
// site may answer before Backup returns (it applies while we send, and
// refuses at once what it will not apply), so a backup's wait reads from
// where the results stood when its manifest went out. Other images'
// results are not delivered; other backups' are skipped by the reader.
func (p *Publisher) listenResults(ctx context.Context, img ferry.ImageSpec, from uint64) (*resultListener, error) {
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{bus.Subject(bus.ConfirmedSubject, img), bus.Subject(bus.FailedSubject, img)},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	}
	if from > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	results, err := p.bus.Backup.OrderedConsumer(ctx, bus.ResultStream, cfg)
	if err != nil {
		return nil, err
	}
	msgs, err := results.Messages()
	if err != nil {
		return nil, err
	}
	return &resultListener{img: img.AtSnap(""), from: from, msgs: msgs}, nil
}
