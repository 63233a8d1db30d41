package publisher

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ferry-dr/ferry/internal/chunk"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/rbddiff"
)

// chunker is the rbddiff.Sink the export engine writes a backup into. It cuts
// the data into chunks, one per object-aligned window of chunkSize bytes
// (the data of all extents in the window, back to back), so that the same
// object of two clones makes the same chunk. Zero extents carry no chunk.
// Finished chunks go to the sender; extents go into pages, which are stored
// as chunks too.
type chunker struct {
	chunkSize uint64
	send      *sender

	header   rbddiff.Header
	window   uint64 // index of the window in buf
	buf      []byte
	pending  []ferry.Extent // extents since the last finished window
	page     []ferry.Extent
	pages    []string
	extents  int
	changed  uint64
	dataRead uint64
}

func newChunker(chunkSize uint64, send *sender) *chunker {
	return &chunker{chunkSize: chunkSize, send: send, buf: send.buffer()}
}

func (c *chunker) WriteHeader(h rbddiff.Header) error {
	c.header = h
	return nil
}

func (c *chunker) WriteData(off uint64, p []byte) error {
	c.changed += uint64(len(p))
	c.dataRead += uint64(len(p))
	for len(p) > 0 {
		w := off / c.chunkSize
		if w != c.window {
			if err := c.finishWindow(); err != nil {
				return err
			}
			c.window = w
		}
		n := min(uint64(len(p)), (w+1)*c.chunkSize-off)
		c.pending = append(c.pending, ferry.Extent{Offset: off, Length: n, ChunkOff: uint64(len(c.buf))})
		c.buf = append(c.buf, p[:n]...)
		off += n
		p = p[n:]
	}
	return c.send.err()
}

func (c *chunker) WriteZero(off, n uint64) error {
	c.changed += n
	c.pending = append(c.pending, ferry.Extent{Offset: off, Length: n, Zero: true})
	return nil
}

// finishWindow hashes the window's data, names the chunk in its extents,
// hands the chunk to the sender and moves the extents into the page.
func (c *chunker) finishWindow() error {
	if len(c.buf) > 0 {
		hash := chunk.Hash(c.buf)
		for i := range c.pending {
			if !c.pending[i].Zero {
				c.pending[i].Chunk = hash
			}
		}
		c.send.put(hash, c.buf)
		c.buf = c.send.buffer()
	}
	for _, e := range c.pending {
		c.page = append(c.page, e)
		c.extents++
		if len(c.page) == chunk.PageSize {
			if err := c.finishPage(); err != nil {
				return err
			}
		}
	}
	c.pending = c.pending[:0]
	return c.send.err()
}

func (c *chunker) finishPage() error {
	if len(c.page) == 0 {
		return nil
	}
	raw, hash, err := chunk.EncodePage(c.page)
	if err != nil {
		return err
	}
	c.send.putOwned(hash, raw)
	c.pages = append(c.pages, hash)
	c.page = c.page[:0]
	return nil
}

func (c *chunker) Close() error {
	if err := c.finishWindow(); err != nil {
		return err
	}
	if err := c.finishPage(); err != nil {
		return err
	}
	select {
	case c.send.buffers <- c.buf[:0]:
	default:
	}
	return c.send.err()
}

// sender stores chunks that the backup site does not hold yet, with several
// stores in flight. Buffers come from a fixed free list, so memory stays at
// (senders+2) chunks whatever the backup size.
type sender struct {
	ctx     context.Context
	store   *chunk.Store
	buffers chan []byte
	jobs    chan sendJob
	wg      sync.WaitGroup
	firstMu sync.Mutex
	first   error

	seenMu sync.Mutex
	seen   map[string]bool // chunks handled in this backup already

	chunks, sent     atomic.Int64  // data chunks referenced / sent
	rawSent, netSent atomic.Uint64 // data chunk bytes sent, before and after compression
	pageSent         atomic.Uint64 // compressed bytes of extent pages sent
}

type sendJob struct {
	hash  string
	raw   []byte
	owned bool // an extent page: raw is not from the free list
}

const senders = 3

func newSender(ctx context.Context, store *chunk.Store, chunkSize uint64) *sender {
	s := &sender{ctx: ctx, store: store, buffers: make(chan []byte, senders+2), jobs: make(chan sendJob), seen: map[string]bool{}}
	for range senders + 2 {
		s.buffers <- make([]byte, 0, chunkSize)
	}
	for range senders {
		s.wg.Add(1)
		go s.work()
	}
	return s
}

func (s *sender) buffer() []byte {
	select {
	case b := <-s.buffers:
		return b[:0]
	case <-s.ctx.Done():
		return make([]byte, 0) // the error surfaces through err()
	}
}

func (s *sender) put(hash string, raw []byte) { s.submit(sendJob{hash: hash, raw: raw}) }
func (s *sender) putOwned(hash string, raw []byte) {
	s.submit(sendJob{hash: hash, raw: raw, owned: true})
}

func (s *sender) submit(j sendJob) {
	if !j.owned {
		s.chunks.Add(1)
	}
	s.seenMu.Lock()
	dup := s.seen[j.hash]
	s.seen[j.hash] = true
	s.seenMu.Unlock()
	if dup {
		s.release(j)
		return
	}
	select {
	case s.jobs <- j:
	case <-s.ctx.Done():
		s.fail(s.ctx.Err())
	}
}

func (s *sender) release(j sendJob) {
	if !j.owned && cap(j.raw) > 0 {
		s.buffers <- j.raw[:0]
	}
}

func (s *sender) work() {
	defer s.wg.Done()
	for j := range s.jobs {
		if s.err() == nil {
			if err := s.store1(j); err != nil {
				s.fail(err)
			}
		}
		s.release(j)
	}
}

// store1 is the dedup: a chunk already at the backup site is not sent.
func (s *sender) store1(j sendJob) error {
	has, err := s.store.Has(s.ctx, j.hash)
	if err != nil || has {
		return err
	}
	n, err := s.store.Put(s.ctx, j.hash, j.raw)
	if err != nil {
		return err
	}
	if j.owned { // an extent page, not data
		s.pageSent.Add(uint64(n))
		return nil
	}
	s.sent.Add(1)
	s.rawSent.Add(uint64(len(j.raw)))
	s.netSent.Add(uint64(n))
	return nil
}

func (s *sender) fail(err error) {
	s.firstMu.Lock()
	if s.first == nil {
		s.first = err
	}
	s.firstMu.Unlock()
}

func (s *sender) err() error {
	s.firstMu.Lock()
	defer s.firstMu.Unlock()
	return s.first
}

// finish waits until every chunk is stored (or one failed).
func (s *sender) finish() error {
	close(s.jobs)
	s.wg.Wait()
	if err := s.err(); err != nil {
		return fmt.Errorf("send chunks: %w", err)
	}
	return nil
}
