package chunk

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/rbddiff"
)

// Pages yields the addresses of a diff's extent pages in order, and io.EOF
// after the last. A backup in flight yields them as they are stored.
type Pages interface {
	NextPage(ctx context.Context) (string, error)
}

// PageList is the Pages of a diff whose pages are all known.
type PageList []string

// NextPage hands out the first page and drops it from the list.
func (l *PageList) NextPage(context.Context) (string, error) {
	if len(*l) == 0 {
		return "", io.EOF
	}
	p := (*l)[0]
	*l = (*l)[1:]
	return p, nil
}

// DiffReader replays a diff stored as chunks as an rbddiff.Source for the
// import engine. A fetcher goroutine walks the extent pages ahead of the
// import and fetches (and verifies) chunks with several fetches in flight;
// Next hands the extents out in order. A chunk that is missing or corrupt
// stops the stream before any of its bytes are handed out. Every extent is
// checked (ferry.ExtentCheck, and against its chunk's real length) before
// it is handed out: one that is not valid stops the stream with
// ferry.ErrInvalid, naming the extent.
type DiffReader struct {
	header rbddiff.Header
	items  chan *fetched
	// buffers holds the chunk buffers not in use: a fetch takes one, and
	// Next gives it back once it has moved past that chunk. Their number
	// bounds the chunks fetched ahead, and reusing them spares the garbage
	// collector a chunk-sized allocation per chunk.
	buffers chan []byte
	cur     *chunkFuture
	ctx     context.Context
	cancel  context.CancelFunc
	err     error
}

// fetched is one extent, with its chunk's bytes once they have arrived.
type fetched struct {
	ext  ferry.Extent
	i    int          // its index in the backup, for messages
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

// NewDiffReader returns the diff with header h whose extents the pages list.
// Close it when done.
func NewDiffReader(ctx context.Context, store *Store, h rbddiff.Header, pages Pages) *DiffReader {
	ctx, cancel := context.WithCancel(ctx)
	s := &DiffReader{header: h, items: make(chan *fetched, 256), buffers: make(chan []byte, prefetch), ctx: ctx, cancel: cancel}
	for range prefetch {
		s.buffers <- nil // allocated by the first fetch that takes it
	}
	go s.fetch(ctx, store, pages)
	return s
}

func (s *DiffReader) fetch(ctx context.Context, store *Store, pages Pages) {
	defer close(s.items)
	check := ferry.NewExtentCheck(s.header.Size, bus.MaxChunkSize)
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
	for {
		page, err := pages.NextPage(ctx)
		if err == io.EOF {
			return
		}
		var extents []ferry.Extent
		if err == nil {
			extents, err = store.GetPage(ctx, page)
		}
		if err != nil {
			emit(failed(err))
			return
		}
		for _, e := range extents {
			f := &fetched{ext: e, i: check.Count()}
			if err := check.Next(e); err != nil {
				emit(failed(fmt.Errorf("extent page %s: %w", page, err)))
				return
			}
			if !e.Zero {
				if e.Chunk != lastHash || last == nil {
					var buf []byte
					select {
					case buf = <-s.buffers:
					case <-ctx.Done():
						return
					}
					fut := &chunkFuture{done: make(chan struct{})}
					go func(hash string) {
						fut.raw, fut.err = store.Get(ctx, hash, buf)
						if fut.err != nil {
							fut.raw = buf // still the buffer's owner, for Next to give back
						}
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

// failed is the item that stops the stream with err.
func failed(err error) *fetched {
	return &fetched{data: &chunkFuture{done: closedChan, err: err}}
}

func (s *DiffReader) Header() (rbddiff.Header, error) { return s.header, nil }

func (s *DiffReader) Next() (rbddiff.Record, error) {
	if s.err != nil {
		return rbddiff.Record{}, s.err
	}
	f, ok := <-s.items
	if !ok {
		// The fetcher stops early only when cancelled: that is not the end
		// of the diff, and must never pass for it.
		if err := s.ctx.Err(); err != nil {
			s.err = err
			return rbddiff.Record{}, err
		}
		return rbddiff.Record{}, io.EOF
	}
	if f.data == nil {
		return rbddiff.Record{Kind: rbddiff.Zero, Offset: f.ext.Offset, Length: f.ext.Length}, nil
	}
	if f.data != s.cur {
		if s.cur != nil {
			s.buffers <- s.cur.raw // Next has moved past that chunk: fetch another
		}
		s.cur = f.data
	}
	<-f.data.done
	if f.data.err != nil {
		s.err = f.data.err
		return rbddiff.Record{}, s.err
	}
	raw := f.data.raw
	// Not the chunk's fault (its hash matched): the extent is wrong.
	if err := f.ext.InChunk(f.i, uint64(len(raw))); err != nil {
		s.err = err
		return rbddiff.Record{}, s.err
	}
	return rbddiff.Record{Kind: rbddiff.Data, Offset: f.ext.Offset, Length: f.ext.Length,
		Payload: bytes.NewReader(raw[f.ext.ChunkOff : f.ext.ChunkOff+f.ext.Length])}, nil
}

func (s *DiffReader) Close() {
	s.cancel()
	for range s.items {
	}
}
