package state

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/nats-io/nats.go/jetstream"
)

// ScrubRecord is what a backup snapshot was written from, kept after its
// chunks age out of the chunk stream: for each chunk the backup wrote, its
// hash and where its extents landed. Reading those extents back from the
// snapshot and joining them in chunk order must give bytes that hash to the
// chunk's hash; anything else is corruption at the backup site.
type ScrubRecord struct {
	Image    ferry.ImageSpec `json:"image"` // backup image, Snap = the backup snapshot
	BackupID string          `json:"backup_id"`
	Created  time.Time       `json:"created"`
	Chunks   []ScrubChunk    `json:"chunks"` // ascending image offsets
	// ChunkKey is the id of the chunk key the addresses are keyed with
	// ("" for plain SHA-256): scrub needs the same key.
	ChunkKey string `json:"chunk_key,omitempty"`
}

// ScrubChunk is one chunk of a backup and its extents, in chunk order
// (which is also ascending image order: a chunk is one object-aligned window).
type ScrubChunk struct {
	Hash    string        `json:"c"`
	Extents []ScrubExtent `json:"e"`
}

// ScrubExtent is [image offset, length, offset in the chunk], compact in JSON.
type ScrubExtent [3]uint64

func (e ScrubExtent) Offset() uint64   { return e[0] }
func (e ScrubExtent) Length() uint64   { return e[1] }
func (e ScrubExtent) ChunkOff() uint64 { return e[2] }

// Span is the image range from the chunk's first extent to the end of its last.
func (c ScrubChunk) Span() (lo, hi uint64) {
	first, last := c.Extents[0], c.Extents[len(c.Extents)-1]
	return first.Offset(), last.Offset() + last.Length()
}

// RawSize is the length of the chunk's raw bytes.
func (c ScrubChunk) RawSize() uint64 {
	last := c.Extents[len(c.Extents)-1]
	return last.ChunkOff() + last.Length()
}

// DataBytes sums the recorded extents' lengths.
func (r *ScrubRecord) DataBytes() uint64 {
	var n uint64
	for _, c := range r.Chunks {
		n += c.RawSize()
	}
	return n
}

// AddExtent appends a data extent of a backup, in manifest order: extents of
// the same chunk that follow each other form one ScrubChunk.
func (r *ScrubRecord) AddExtent(e ferry.Extent) {
	if e.Zero {
		return
	}
	x := ScrubExtent{e.Offset, e.Length, e.ChunkOff}
	if k := len(r.Chunks); k > 0 && r.Chunks[k-1].Hash == e.Chunk && e.ChunkOff != 0 {
		r.Chunks[k-1].Extents = append(r.Chunks[k-1].Extents, x)
		return
	}
	r.Chunks = append(r.Chunks, ScrubChunk{Hash: e.Chunk, Extents: []ScrubExtent{x}})
}

// ScrubRecords is the ferry-scrub object store at the backup site.
type ScrubRecords struct {
	obs jetstream.ObjectStore
}

// OpenScrubRecords opens the object store (bus.SetupBackup creates it).
func OpenScrubRecords(ctx context.Context, js jetstream.JetStream) (*ScrubRecords, error) {
	obs, err := js.ObjectStore(ctx, bus.ScrubBucket)
	if err != nil {
		return nil, fmt.Errorf("open object store %s: %w (the backup site's consumer creates it; is it running a Ferry that records scrub data?)", bus.ScrubBucket, err)
	}
	return &ScrubRecords{obs: obs}, nil
}

// scrubPrefix is the start of the object names of img's records.
func scrubPrefix(img ferry.ImageSpec) string { return bus.ImageKey(img.AtSnap("")) + "." }

func scrubName(snap ferry.ImageSpec) string { return scrubPrefix(snap) + bus.Token(snap.Snap) }

// Put stores r (gzip'd JSON) under its image and snapshot, replacing any
// earlier record of the same snapshot.
func (s *ScrubRecords) Put(ctx context.Context, r *ScrubRecord) error {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(r); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if _, err := s.obs.PutBytes(ctx, scrubName(r.Image), buf.Bytes()); err != nil {
		return fmt.Errorf("store scrub record of %s: %w", r.Image, err)
	}
	return nil
}

// Get returns the record of snap (POOL/IMAGE@SNAP), or nil if there is none.
func (s *ScrubRecords) Get(ctx context.Context, snap ferry.ImageSpec) (*ScrubRecord, error) {
	raw, err := s.obs.GetBytes(ctx, scrubName(snap))
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read scrub record of %s: %w", snap, err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("scrub record of %s is not gzip: %w", snap, err)
	}
	var r ScrubRecord
	if err := json.NewDecoder(zr).Decode(&r); err != nil {
		return nil, fmt.Errorf("scrub record of %s does not parse: %w", snap, err)
	}
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return nil, fmt.Errorf("scrub record of %s: %w", snap, err)
	}
	return &r, nil
}

// RemoveStale deletes img's records whose snapshot is not among snaps (the
// image's snapshots now) and returns the names of those it deleted.
func (s *ScrubRecords) RemoveStale(ctx context.Context, img ferry.ImageSpec, snaps []string) ([]string, error) {
	have, err := s.names(ctx, img)
	if err != nil {
		return nil, err
	}
	live := map[string]bool{}
	for _, snap := range snaps {
		live[scrubName(img.AtSnap(snap))] = true
	}
	var removed []string
	for _, name := range have {
		if live[name] {
			continue
		}
		if err := s.obs.Delete(ctx, name); err != nil {
			return removed, fmt.Errorf("remove scrub record %s of a snapshot that is gone: %w", name, err)
		}
		removed = append(removed, name)
	}
	return removed, nil
}

// names lists the object names of img's records.
func (s *ScrubRecords) names(ctx context.Context, img ferry.ImageSpec) ([]string, error) {
	infos, err := s.obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list scrub records: %w", err)
	}
	var names []string
	for _, info := range infos {
		if strings.HasPrefix(info.Name, scrubPrefix(img)) {
			names = append(names, info.Name)
		}
	}
	return names, nil
}
