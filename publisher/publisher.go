// Package publisher is the source site's half of a backup: it turns a
// snapshot into a manifest and the chunks the backup site lacks.
//
//	snapshot event -> choose base (state bucket) -> ship the diff
//	  (internal/ship: export, chunks, feed), with the manifest sent as soon
//	  as the diff's header is known
//
// After the backup site confirms a snapshot, Prune deletes the older Ferry
// snapshots of the image, keeping the newest confirmed one as the next base.
package publisher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/chunk"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/rbddiff"
	"github.com/ferry-dr/ferry/internal/ship"
	"github.com/ferry-dr/ferry/internal/sign"
	"github.com/ferry-dr/ferry/internal/state"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultChunkSize matches Ceph's default object size, so chunks are objects.
const DefaultChunkSize = 4 << 20

// publisherReaders is the export's reads in flight during a backup.
const publisherReaders = 6

// Publisher backs up images of one source cluster.
type Publisher struct {
	ceph      *ceph.Cluster
	bus       *bus.Conn
	store     *chunk.Store
	book      *state.Book
	chunkSize uint64
	log       *slog.Logger
	observer  Observer
	pools     []string
	signer    *sign.Signer
	trust     *sign.Trust // the backup site's keys: results
	restore   *sign.Trust // the restore keys: restore jobs
}

// Options configure a Publisher.
type Options struct {
	ChunkSize        uint64 // default DefaultChunkSize; at most bus.MaxChunkSize
	CompressionLevel int    // gzip level 1-9, default chunk.DefaultLevel
	Log              *slog.Logger
	Observer         Observer // told each backup's outcome (metrics); nil: nobody
	// Pools are the source pools this publisher exports; empty: any pool.
	Pools []string
	// Signer signs manifests and extent page feeds; nil: unsigned.
	Signer *sign.Signer
	// Trust holds the backup site's public keys: results signed by none of
	// them are refused. RestoreTrust holds the keys of the restore identity
	// (ferry restore at the backup site): restore jobs signed by none of
	// them are refused. Empty: everything is accepted (a setup without
	// keys, which Run warns of).
	Trust, RestoreTrust *sign.Trust
	// ChunkKey addresses and encrypts the chunks (nil: plain SHA-256 and
	// gzip); the backup site's consumer must hold the same key.
	ChunkKey chunk.Sealer
}

// New opens the chunk store and state bucket of the backup site.
func New(ctx context.Context, cluster *ceph.Cluster, conn *bus.Conn, o Options) (*Publisher, error) {
	if o.ChunkSize == 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.ChunkSize > bus.MaxChunkSize || o.ChunkSize < 64<<10 || o.ChunkSize&(o.ChunkSize-1) != 0 {
		return nil, fmt.Errorf("chunk size %d: want a power of two from 64 KiB to %d MiB", o.ChunkSize, bus.MaxChunkSize>>20)
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	// gzip can grow incompressible data a little; the chunk must still fit.
	if need := int64(o.ChunkSize + o.ChunkSize/64 + 64<<10); conn.NC.MaxPayload() < need {
		return nil, fmt.Errorf("the NATS server accepts messages of at most %d bytes, but %d-byte chunks need %d: raise max_payload on the server (ferry nats-server sets %d) or lower --chunk-size",
			conn.NC.MaxPayload(), o.ChunkSize, need, bus.MaxPayload)
	}
	// Both lookups cross the WAN: side by side, they cost one round trip.
	var book *state.Book
	var bookErr error
	opened := make(chan struct{})
	go func() { book, bookErr = state.Open(ctx, conn.Backup); close(opened) }()
	store, err := chunk.Open(ctx, conn.Backup)
	if err == nil {
		err = store.SetLevel(o.CompressionLevel)
	}
	<-opened
	if err == nil {
		err = bookErr
	}
	if err != nil {
		return nil, err
	}
	store.SetSealer(o.ChunkKey)
	return &Publisher{ceph: cluster, bus: conn, store: store, book: book, chunkSize: o.ChunkSize, log: o.Log, observer: o.Observer,
		pools: o.Pools, signer: o.Signer, trust: o.Trust, restore: o.RestoreTrust}, nil
}

// Sent is a backup as this publisher sent it.
type Sent struct {
	ferry.Manifest  // the message, as published
	ferry.BackupEnd // what the feed's end said
	// ResultsFrom is the first FERRY_RESULTS sequence that can answer this
	// try, for the wait (see WaitConfirmed).
	ResultsFrom uint64
}

// Standalone returns the manifest in the form that needs no feed: sent
// again after its feed is gone, it is applied while its chunks last.
func (s *Sent) Standalone() ferry.Manifest {
	m := s.Manifest
	m.FeedSeq, m.FeedAttempt = 0, ""
	end := s.BackupEnd
	m.Complete = &end
	return m
}

// Backup sends the backup of ev.Image (whose Snap must exist) and returns
// it once every page is out. The backup site applies it as it arrives; see
// WaitConfirmed for its answer. Sending the same snapshot again sends only
// the chunks the backup site still lacks.
func (p *Publisher) Backup(ctx context.Context, ev ferry.SnapshotEvent, rep progress.Reporter) (*Sent, error) {
	return p.backupAhead(ctx, ev, rep, nil)
}

// backupAhead is Backup with the requests a started ahead (nil: none).
func (p *Publisher) backupAhead(ctx context.Context, ev ferry.SnapshotEvent, rep progress.Reporter, a *ahead) (*Sent, error) {
	s, err := p.backup(ctx, ev, rep, a)
	p.observe(ctx, ev, s, err)
	return s, err
}

func (p *Publisher) backup(ctx context.Context, ev ferry.SnapshotEvent, rep progress.Reporter, a *ahead) (*Sent, error) {
	img := ev.Image.AtSnap("")
	if err := p.exportable(ev.Image); err != nil {
		return nil, err
	}
	info, err := p.ceph.Info(img)
	if err != nil {
		return nil, err
	}
	backupID := ferry.BackupID(info.ID, img, ev.Image.Snap)
	if a == nil || a.backupID != backupID {
		a.drop() // the image changed under the requests sent ahead
		a = p.startAhead(ctx, img, backupID, false)
	}
	defer a.dropFeed()
	snaps, err := p.ceph.Snapshots(img)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(snapNames(snaps), ev.Image.Snap) {
		return nil, fmt.Errorf("back up %s: %w", ev.Image, ErrSnapshotGone)
	}
	got := <-a.state
	if got.err != nil {
		return nil, got.err
	}
	base, err := chooseBase(got.st, info.ID, snapNames(snaps), ev.Image.Snap, ev.Resync)
	if err != nil {
		return nil, err
	}
	log := p.log.With("image", img.String(), "snapshot", ev.Image.Snap, "backup_id", backupID, "base", base)
	log.Info("backup starting")

	s := &Sent{Manifest: ferry.Manifest{
		BackupID:      backupID,
		Image:         ev.Image,
		SourceImageID: info.ID,
		FromSnap:      base,
		ToSnap:        ev.Image.Snap,
		ChunkSize:     p.chunkSize,
		Consistency:   ev.Consistency,
		Resync:        ev.Resync,
		ForceRollback: ev.ForceRollback,
		Created:       ev.Created,
		VolumeID:      ev.VolumeID,
		InstanceID:    ev.InstanceID,
	}}
	// The manifest goes out as soon as the diff's header is known, and the
	// pages follow on the feed as they are stored: the backup site imports
	// while we still send. The backup site may answer as soon as it has the
	// manifest: where its results stand was looked up ahead.
	sh, err := ship.Ship(ctx, ship.Options{
		Cluster: p.ceph,
		// Compressing and sending, not reading, sets the pace here: fewer
		// reads in flight keep the same speed in less memory.
		Export: ceph.ExportOptions{Image: ev.Image, FromSnap: base, Readers: publisherReaders},
		Store:  p.store, ChunkSize: p.chunkSize,
		Feed: p.bus.Backup, FeedImage: img, ID: backupID, Signer: p.signer,
		StartFeed: a.startFeed(),
		Announce: func(h rbddiff.Header, seq uint64, attempt string) error {
			s.Size, s.FeedSeq, s.FeedAttempt = h.Size, seq, attempt
			r := <-a.results
			if r.err != nil {
				return r.err
			}
			s.ResultsFrom = r.seq
			return p.publishManifest(ctx, &s.Manifest)
		},
		Progress: rep,
	})
	if err != nil {
		return nil, err
	}
	s.BackupEnd = ferry.BackupEnd{ExtentPages: sh.Pages, ExtentCount: sh.Extents, Stats: sh.Figures()}
	log.Info("backup sent", "data_bytes", s.Stats.DataBytes,
		"chunks", s.Stats.Chunks, "chunks_sent", s.Stats.ChunksSent, "bytes_sent", s.Stats.BytesSent)
	return s, nil
}

func (p *Publisher) publishManifest(ctx context.Context, m *ferry.Manifest) error {
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(bus.Subject(bus.ManifestSubject, m.Image))
	msg.Data = raw
	if err := p.signer.Sign(msg); err != nil {
		return err
	}
	if _, err := p.bus.Backup.PublishMsg(ctx, msg, jetstream.WithMsgID(m.MessageID()), jetstream.WithExpectStream(bus.ManifestStream)); err != nil {
		return fmt.Errorf("publish manifest of %s: %w", m.BackupID, err)
	}
	return nil
}

func snapNames(snaps []ceph.Snapshot) []string {
	names := make([]string, len(snaps))
	for i, s := range snaps {
		names[i] = s.Name
	}
	return names
}

// Prune deletes the source snapshots of img that the backup site no longer
// needs as a base (see prunable) and returns their names.
func (p *Publisher) Prune(ctx context.Context, img ferry.ImageSpec) ([]string, error) {
	img = img.AtSnap("")
	st, err := p.book.Get(ctx, img)
	if err != nil || st == nil {
		return nil, err
	}
	info, err := p.ceph.Info(img)
	if err != nil {
		return nil, err
	}
	if st.SourceImageID != info.ID {
		return nil, nil // another image's chain: its confirmations say nothing about this one
	}
	return p.pruneWhere(img, st.HasConfirmed)
}

// pruneWhere prunes img's snapshots as if confirmed named what the backup
// site holds.
func (p *Publisher) pruneWhere(img ferry.ImageSpec, confirmed func(string) bool) ([]string, error) {
	snaps, err := p.ceph.Snapshots(img)
	if err != nil {
		return nil, err
	}
	var pruned []string
	for _, name := range prunable(snapNames(snaps), confirmed) {
		err := p.ceph.RemoveSnapshot(img.AtSnap(name))
		if errors.Is(err, ceph.ErrNotFound) {
			continue // pruned meanwhile by another publisher
		}
		if err != nil {
			return pruned, err
		}
		p.log.Info("pruned source snapshot", "image", img.String(), "snapshot", name)
		pruned = append(pruned, name)
	}
	return pruned, nil
}

// ErrSnapshotGone: the snapshot to back up no longer exists at the source
// (removed after the backup site gave its backup up, or by hand).
var ErrSnapshotGone = errors.New("the snapshot no longer exists at the source: nothing to send")

// ErrGivenUp: the backup site gave a backup up; it will not apply it.
var ErrGivenUp = errors.New("the backup site gave up")

// DropGivenUp removes the source snapshot of a backup that the backup site
// gave up: nothing will ever read it, and a snapshot left behind costs the
// image write performance (one per failed backup, for as long as the fault
// lasts). A snapshot the backup site confirmed, or one Ferry did not take,
// stays. It reports whether it removed one.
func (p *Publisher) DropGivenUp(ctx context.Context, snap ferry.ImageSpec) (bool, error) {
	if !ferry.IsFerrySnapshot(snap.Snap) {
		return false, nil
	}
	st, err := p.book.Get(ctx, snap)
	if err != nil {
		return false, err
	}
	if st != nil && st.HasConfirmed(snap.Snap) {
		return false, nil
	}
	err = p.ceph.RemoveSnapshot(snap)
	if errors.Is(err, ceph.ErrNotFound) {
		return false, nil // removed meanwhile (by `ferry backup`, or another publisher)
	}
	if err != nil {
		return false, err
	}
	p.log.Info("removed the source snapshot of a backup the backup site gave up", "image", snap.AtSnap("").String(), "snapshot", snap.Snap)
	return true, nil
}

// nextResult returns the sequence the next message of FERRY_RESULTS gets.
func (p *Publisher) nextResult(ctx context.Context) (uint64, error) {
	stream, err := p.bus.Backup.Stream(ctx, bus.ResultStream)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", bus.ResultStream, err)
	}
	return stream.CachedInfo().State.LastSeq + 1, nil
}
