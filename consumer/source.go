package consumer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ferry-dr/ferry/internal/chunk"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/rbddiff"
)

// manifestSource replays a manifest as an rbddiff.Source for the import
// engine. A fetcher goroutine walks the extent pages ahead of the import and
// fetches (and verifies) chunks with several fetches in flight; Next hands
// the extents out in order. A chunk that is missing or corrupt stops the
// stream before any of its bytes are handed out.
type manifestSource struct {
	m      *ferry.Manifest
	items  chan *fetched
	slots  chan struct{} // one per chunk fetched and not yet passed by Next
	cur    *chunkFuture
	cancel context.CancelFunc
	err    error
}

// fetched is one extent, with its chunk's bytes once they have arrived.
type fetched struct {
	ext  ferry.Extent
	data *chunkFuture // nil for zero extents
}

type chunkFuture struct {
	done chan struct{}
	raw  []byte
	err  error
}

// prefetch bounds the chunks fetched ahead of the import (memory: about
// prefetch chunks).
const prefetch = 4

func newManifestSource(ctx context.Context, store *chunk.Store, m *ferry.Manifest) *manifestSource {
	ctx, cancel := context.WithCancel(ctx)
	s := &manifestSource{m: m, items: make(chan *fetched, 256), slots: make(chan struct{}, prefetch), cancel: cancel}
	go s.fetch(ctx, store)
	return s
}

func (s *manifestSource) fetch(ctx context.Context, store *chunk.Store) {
	defer close(s.items)
	var last *chunkFuture
	var lastHash string
	emit := func(f *fetched) bool {
		select {
		case s.items <- f:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for _, page := range s.m.ExtentPages {
		extents, err := store.GetPage(ctx, page)
		if err != nil {
			emit(&fetched{data: &chunkFuture{done: closedChan, err: err}})
			return
		}
		for _, e := range extents {
			f := &fetched{ext: e}
			if !e.Zero {
				if e.Chunk != lastHash || last == nil {
					select {
					case s.slots <- struct{}{}:
					case <-ctx.Done():
						return
					}
					fut := &chunkFuture{done: make(chan struct{})}
					go func(hash string) {
						fut.raw, fut.err = store.Get(ctx, hash, nil)
						close(fut.done)
					}(e.Chunk)
					last, lastHash = fut, e.Chunk
				}
				f.data = last
			}
			if !emit(f) {
				return
			}
		}
	}
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (s *manifestSource) Header() (rbddiff.Header, error) {
	return rbddiff.Header{FromSnap: s.m.FromSnap, ToSnap: s.m.ToSnap, Size: s.m.Size}, nil
}

func (s *manifestSource) Next() (rbddiff.Record, error) {
	if s.err != nil {
		return rbddiff.Record{}, s.err
	}
	f, ok := <-s.items
	if !ok {
		return rbddiff.Record{}, io.EOF
	}
	if f.data == nil {
		return rbddiff.Record{Kind: rbddiff.Zero, Offset: f.ext.Offset, Length: f.ext.Length}, nil
	}
	if f.data != s.cur {
		if s.cur != nil {
			<-s.slots // Next has moved past that chunk: fetch another
		}
		s.cur = f.data
	}
	<-f.data.done
	if f.data.err != nil {
		s.err = f.data.err
		return rbddiff.Record{}, s.err
	}
	raw := f.data.raw
	if f.ext.ChunkOff+f.ext.Length > uint64(len(raw)) {
		s.err = &chunk.Error{Hash: f.ext.Chunk, Err: fmt.Errorf("%w: extent %#x+%#x reaches past the chunk's %d bytes", chunk.ErrCorrupt, f.ext.Offset, f.ext.Length, len(raw))}
		return rbddiff.Record{}, s.err
	}
	return rbddiff.Record{Kind: rbddiff.Data, Offset: f.ext.Offset, Length: f.ext.Length,
		Payload: bytes.NewReader(raw[f.ext.ChunkOff : f.ext.ChunkOff+f.ext.Length])}, nil
}

func (s *manifestSource) Close() {
	s.cancel()
	for range s.items {
	}
}

// chunkError returns the chunk at fault in err, if any.
func chunkError(err error) (*chunk.Error, bool) {
	var ce *chunk.Error
	ok := errors.As(err, &ce)
	return ce, ok
}
