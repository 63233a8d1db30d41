package chunk

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/rbddiff"
)

// WriterOptions configure a DiffWriter.
type WriterOptions struct {
	ChunkSize uint64 // object-aligned window; a power of two
	// OnHeader is called with the diff's header before any data.
	OnHeader func(rbddiff.Header) error
	// OnPage is called with each extent page's address, in order, once the
	// page and every chunk named by it and by the pages before it are
	// stored: a reader told of a page can fetch all it needs at once.
	OnPage func(hash string) error
}

// WriteStats sum up what a DiffWriter stored.
type WriteStats struct {
	Header          rbddiff.Header
	Pages           []string // extent pages, in order
	Extents         int
	ChangedBytes    uint64 // data and zeros
	DataBytes       uint64
	Chunks          int    // data chunks referenced
	ChunksSent      int    // data chunks the store did not hold yet
	RawBytesSent    uint64 // their bytes before compression
	NetBytesSent    uint64 // and after
	PageBytesSent   uint64 // compressed bytes of extent pages stored
	ChunksDuplicate int    // data chunks seen earlier in the same diff
}

// BackupStats are the figures of a backup (or restore) that stored this
// diff and took d to do it.
func (s WriteStats) BackupStats(d time.Duration) ferry.BackupStats {
	return ferry.BackupStats{
		ChangedBytes:    s.ChangedBytes,
		DataBytes:       s.DataBytes,
		Chunks:          s.Chunks,
		ChunksSent:      s.ChunksSent,
		RawBytesSent:    s.RawBytesSent,
		BytesSent:       s.NetBytesSent + s.PageBytesSent,
		ExtentBytesSent: s.PageBytesSent,
		DurationSeconds: d.Seconds(),
	}
}

// DiffWriter is the rbddiff.Sink that stores a diff as chunks. It cuts the
// data into chunks, one per object-aligned window of ChunkSize bytes (the
// data of all extents in the window, back to back), so that the same object
// of two clones makes the same chunk. Zero extents carry no chunk. Chunks the
// store holds already are not stored again. The extents go into pages,
// which are stored as chunks too.
type DiffWriter struct {
	opts WriterOptions
	send *sender

	header   rbddiff.Header
	window   uint64 // index of the window in buf
	buf      []byte
	pending  []ferry.Extent // extents since the last finished window
	page     []ferry.Extent
	pageData int // data chunks the page names
	pages    []string
	extents  int
	changed  uint64
	dataRead uint64
}

// NewDiffWriter returns a DiffWriter storing into s. Call Finish after the
// diff is written (or has failed) to wait for the stores in flight.
func NewDiffWriter(ctx context.Context, s *Store, o WriterOptions) *DiffWriter {
	send := newSender(ctx, s, o.ChunkSize, o.OnPage)
	return &DiffWriter{opts: o, send: send, buf: send.buffer()}
}

func (w *DiffWriter) WriteHeader(h rbddiff.Header) error {
	w.header = h
	if w.opts.OnHeader != nil {
		return w.opts.OnHeader(h)
	}
	return nil
}

func (w *DiffWriter) WriteData(off uint64, p []byte) error {
	w.changed += uint64(len(p))
	w.dataRead += uint64(len(p))
	for len(p) > 0 {
		win := off / w.opts.ChunkSize
		if win != w.window {
			if err := w.finishWindow(); err != nil {
				return err
			}
			w.window = win
		}
		n := min(uint64(len(p)), (win+1)*w.opts.ChunkSize-off)
		w.pending = append(w.pending, ferry.Extent{Offset: off, Length: n, ChunkOff: uint64(len(w.buf))})
		w.buf = append(w.buf, p[:n]...)
		off += n
		p = p[n:]
	}
	return w.send.err()
}

func (w *DiffWriter) WriteZero(off, n uint64) error {
	w.changed += n
	w.pending = append(w.pending, ferry.Extent{Offset: off, Length: n, Zero: true})
	return nil
}

// finishWindow hashes the window's data, names the chunk in its extents,
// hands the chunk to the sender and moves the extents into the page.
func (w *DiffWriter) finishWindow() error {
	if len(w.buf) > 0 {
		hash := w.send.store.Address(w.buf) // chunk key: seal.go
		for i := range w.pending {
			if !w.pending[i].Zero {
				w.pending[i].Chunk = hash
			}
		}
		w.send.put(hash, w.buf)
		w.buf = w.send.buffer()
		w.pageData++
	}
	for _, e := range w.pending {
		w.page = append(w.page, e)
		w.extents++
		if len(w.page) == PageSize {
			if err := w.finishPage(); err != nil {
				return err
			}
		}
	}
	w.pending = w.pending[:0]
	if w.pageData >= PageChunks {
		if err := w.finishPage(); err != nil {
			return err
		}
	}
	return w.send.err()
}

func (w *DiffWriter) finishPage() error {
	if len(w.page) == 0 {
		return nil
	}
	raw, hash, err := w.send.store.EncodePage(w.page)
	if err != nil {
		return err
	}
	w.send.putPage(hash, raw)
	w.pages = append(w.pages, hash)
	w.page, w.pageData = w.page[:0], 0
	return nil
}

// Close ends the diff: the last window and page go to the store.
func (w *DiffWriter) Close() error {
	if err := w.finishWindow(); err != nil {
		return err
	}
	if err := w.finishPage(); err != nil {
		return err
	}
	w.send.release(sendJob{raw: w.buf})
	w.buf = nil
	return w.send.err()
}

// Finish waits until every chunk and page is stored and announced (or one
// failed) and returns the figures. Call it once, also after a failed export.
func (w *DiffWriter) Finish() (WriteStats, error) {
	err := w.send.finish()
	s := w.send
	return WriteStats{
		Header:          w.header,
		Pages:           w.pages,
		Extents:         w.extents,
		ChangedBytes:    w.changed,
		DataBytes:       w.dataRead,
		Chunks:          int(s.chunks.Load()),
		ChunksSent:      int(s.sent.Load()),
		RawBytesSent:    s.rawSent.Load(),
		NetBytesSent:    s.netSent.Load(),
		PageBytesSent:   s.pageSent.Load(),
		ChunksDuplicate: int(s.dups.Load()),
	}, err
}

// sender stores chunks that the store does not hold yet, with several
// stores in flight, and announces pages in order once stored. Buffers come
// from a fixed free list, so memory stays at (senders+2) chunks whatever
// the diff's size.
type sender struct {
	ctx     context.Context
	store   *Store
	buffers chan []byte
	jobs    chan sendJob
	wg      sync.WaitGroup
	firstMu sync.Mutex
	first   error

	// order holds every chunk and page in the order they were cut; the
	// announcer walks it to call onPage only after all before are stored.
	order     chan orderEntry
	onPage    func(string) error
	announced chan struct{}

	seenMu sync.Mutex
	seen   map[string]chan struct{} // chunks of this diff, closed once handled

	chunks, sent, dups atomic.Int64  // data chunks referenced / sent / seen before
	rawSent, netSent   atomic.Uint64 // data chunk bytes sent, before and after compression
	pageSent           atomic.Uint64 // compressed bytes of extent pages sent
}

type sendJob struct {
	hash string
	raw  []byte
	page bool // an extent page: raw is not from the free list
	done chan struct{}
}

type orderEntry struct {
	done chan struct{}
	page string // set for pages
}

// senders is the chunk stores in flight.
const senders = 3

func newSender(ctx context.Context, store *Store, chunkSize uint64, onPage func(string) error) *sender {
	s := &sender{
		ctx: ctx, store: store,
		buffers:   make(chan []byte, senders+2),
		jobs:      make(chan sendJob),
		order:     make(chan orderEntry, 4096),
		onPage:    onPage,
		announced: make(chan struct{}),
		seen:      map[string]chan struct{}{},
	}
	for range senders + 2 {
		s.buffers <- make([]byte, 0, chunkSize)
	}
	for range senders {
		s.wg.Add(1)
		go s.work()
	}
	go s.announce()
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
func (s *sender) putPage(hash string, raw []byte) {
	s.submit(sendJob{hash: hash, raw: raw, page: true})
}

func (s *sender) submit(j sendJob) {
	if !j.page {
		s.chunks.Add(1)
	}
	s.seenMu.Lock()
	done, dup := s.seen[j.hash]
	if !dup {
		done = make(chan struct{})
		s.seen[j.hash] = done
	}
	s.seenMu.Unlock()
	entry := orderEntry{done: done}
	if j.page {
		entry.page = j.hash
	}
	if dup {
		if !j.page {
			s.dups.Add(1)
		}
		s.release(j)
	} else {
		j.done = done
		select {
		case s.jobs <- j:
		case <-s.ctx.Done():
			s.fail(s.ctx.Err())
			s.release(j)
			close(done)
		}
	}
	select {
	case s.order <- entry:
	case <-s.ctx.Done():
		s.fail(s.ctx.Err())
	}
}

func (s *sender) release(j sendJob) {
	if !j.page && cap(j.raw) > 0 {
		select {
		case s.buffers <- j.raw[:0]:
		default:
		}
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
		close(j.done)
	}
}

// store1 is the dedup: a chunk already in the store is not sent.
func (s *sender) store1(j sendJob) error {
	has, err := s.store.Has(s.ctx, j.hash)
	if err != nil || has {
		return err
	}
	n, err := s.store.Put(s.ctx, j.hash, j.raw)
	if err != nil {
		return err
	}
	if j.page {
		s.pageSent.Add(uint64(n))
		return nil
	}
	s.sent.Add(1)
	s.rawSent.Add(uint64(len(j.raw)))
	s.netSent.Add(uint64(n))
	return nil
}

// announce calls onPage for each page once it and everything cut before it
// are stored. After a failure it only drains.
func (s *sender) announce() {
	defer close(s.announced)
	for e := range s.order {
		<-e.done
		if e.page == "" || s.onPage == nil || s.err() != nil {
			continue
		}
		if err := s.onPage(e.page); err != nil {
			s.fail(err)
		}
	}
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

// finish waits until every chunk is stored and every page announced (or
// one failed).
func (s *sender) finish() error {
	close(s.jobs)
	s.wg.Wait()
	close(s.order)
	<-s.announced
	if err := s.err(); err != nil {
		return fmt.Errorf("store chunks: %w", err)
	}
	return nil
}
