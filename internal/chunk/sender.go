package chunk

import (
	"bytes"
	"context"
	"fmt"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
)

// sender stores the chunks of a diff that the store does not hold yet, and
// announces the pages in order, each once it and everything cut before it
// are stored. Each chunk has a goroutine of its own (look up, compress,
// publish, wait for the acknowledgement), so that across a WAN the round
// trips of many chunks overlap. What bounds them is a window of bytes in
// flight, not a count of chunks: an incremental's many small chunks fill a
// long link as well as a full backup's big ones, and memory stays at about
// the window (and a compression buffer per core) whatever the diff.
type sender struct {
	ctx   context.Context
	store *Store
	// window holds one token per windowUnit bytes of chunk data in flight:
	// put blocks (and with it the export) while it is full.
	window chan struct{}
	// cores holds one token per compression running: no more at once than
	// the machine has cores.
	cores chan struct{}
	// acking is the window's tokens of chunks compressed and published,
	// waiting for their acknowledgement: high while the link is what the
	// chunks wait for.
	acking atomic.Int64
	wg     sync.WaitGroup

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
	hash   string
	raw    []byte // the chunk's bytes; once compressed, its gzip
	page   bool   // an extent page
	pooled bool   // raw is from the buffer pools
	tokens int    // of the window
	done   chan struct{}
}

type orderEntry struct {
	done chan struct{}
	page string // set for pages
}

// The window: 32 MiB of chunk data, counted raw until a chunk is
// compressed and compressed from then on, so that it bounds the memory of
// the chunks in flight and, on the link, their bytes on the wire. At 100 ms
// RTT that is ahead of a 1 Gbit/s link's bandwidth-delay product even
// counting the lookup's round trip.
const (
	windowUnit  = 64 << 10
	windowBytes = 32 << 20
)

func newSender(ctx context.Context, store *Store, onPage func(string) error) *sender {
	s := &sender{
		ctx: ctx, store: store,
		window:    make(chan struct{}, windowBytes/windowUnit),
		cores:     make(chan struct{}, max(1, runtime.GOMAXPROCS(0))),
		order:     make(chan orderEntry, 4096),
		onPage:    onPage,
		announced: make(chan struct{}),
		seen:      map[string]chan struct{}{},
	}
	go s.announce()
	return s
}

// put stores a copy of raw, the chunk whose address is hash.
func (s *sender) put(hash string, raw []byte) {
	buf := getBuffer(len(raw))
	s.submit(sendJob{hash: hash, raw: append(buf, raw...), pooled: true})
}

// putPage stores an extent page; raw is the sender's from now on.
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
		if s.acquire(&j) {
			s.wg.Add(1)
			go s.run(j)
		} else {
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

// acquire takes the window's tokens for j's bytes (all of the window at
// most), waiting while it is full. False once the context is done.
func (s *sender) acquire(j *sendJob) bool {
	for j.tokens < tokens(cap(j.raw)) {
		select {
		case s.window <- struct{}{}:
			j.tokens++
		case <-s.ctx.Done():
			s.fail(s.ctx.Err())
			return false
		}
	}
	return true
}

// tokens is the window's tokens for n bytes: all of the window at most.
func tokens(n int) int { return (min(n, windowBytes) + windowUnit - 1) / windowUnit }

// release gives j's buffer and tokens back.
func (s *sender) release(j sendJob) {
	if j.pooled {
		putBuffer(j.raw)
	}
	s.giveBack(j.tokens)
}

func (s *sender) giveBack(n int) {
	for range n {
		<-s.window
	}
}

func (s *sender) run(j sendJob) {
	defer s.wg.Done()
	if s.err() == nil {
		if err := s.store1(&j); err != nil {
			s.fail(err)
		}
	}
	s.release(j)
	close(j.done)
}

// store1 is the dedup: a chunk already in the store is not sent.
func (s *sender) store1(j *sendJob) error {
	has, err := s.store.Has(s.ctx, j.hash)
	if err != nil || has {
		return err
	}
	rawSize := len(j.raw)
	if err := s.compress(j); err != nil {
		return fmt.Errorf("compress chunk %s: %w", j.hash, err)
	}
	s.acking.Add(int64(j.tokens))
	err = s.store.publish(s.ctx, j.hash, j.raw, rawSize)
	s.acking.Add(-int64(j.tokens))
	if err != nil {
		return err
	}
	n := uint64(len(j.raw))
	if j.page {
		s.pageSent.Add(n)
		return nil
	}
	s.sent.Add(1)
	s.rawSent.Add(uint64(rawSize))
	s.netSent.Add(n)
	return nil
}

// compress replaces j's bytes by their gzip, compressed on one core at the
// level adaptLevel picks, and gives back the window's tokens the gzip does
// not need.
func (s *sender) compress(j *sendJob) error {
	level := s.store.level
	select {
	case s.cores <- struct{}{}:
	default:
		level = adaptLevel(level, s.acking.Load(), int64(cap(s.window)))
		s.cores <- struct{}{}
	}
	defer func() { <-s.cores }()
	buf := outBuffers.Get().(*bytes.Buffer)
	defer outBuffers.Put(buf)
	if err := compress(buf, j.raw, level); err != nil {
		return err
	}
	var out []byte
	if sizeClass(buf.Len()) <= sizeClass(cap(j.raw)) {
		out = append(getBuffer(buf.Len()), buf.Bytes()...)
	} else {
		out = bytes.Clone(buf.Bytes()) // grown past its class: rare, not pooled
	}
	if j.pooled {
		putBuffer(j.raw)
	}
	j.raw, j.pooled = out, true
	if need := tokens(cap(out)); need < j.tokens {
		s.giveBack(j.tokens - need)
		j.tokens = need
	}
	return nil
}

// adaptLevel is the gzip level of a chunk that found every core busy
// compressing, with acking of the window's tokens waiting on the link:
// while that is less than half the window, the CPU is the bottleneck, not
// the link, and a light level ships sooner; else the link is, and the
// store's level keeps the bytes on it few. (A chunk that finds a core free
// is compressed at the store's level.)
func adaptLevel(level int, acking, window int64) int {
	if acking < window/2 {
		return min(level, lightLevel)
	}
	return level
}

// lightLevel: this gzip's level 2 is both faster and smaller than its
// level 1 (on binaries about 1.15x gzip -6's bytes at twice level 6's
// speed).
const lightLevel = 2

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
	s.wg.Wait()
	close(s.order)
	<-s.announced
	if err := s.err(); err != nil {
		return fmt.Errorf("store chunks: %w", err)
	}
	return nil
}

// Chunk copies in flight come from pools by size class (powers of two from
// windowUnit up), so that a full backup's 4 MiB chunks and an
// incremental's small ones both reuse buffers instead of burdening the
// garbage collector with a fresh one per chunk.
var buffers [bits.UintSize]sync.Pool

func sizeClass(n int) int { return bits.Len(uint(max(n, windowUnit) - 1)) }

func getBuffer(n int) []byte {
	c := sizeClass(n)
	if b, ok := buffers[c].Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, 1<<c)
}

func putBuffer(b []byte) {
	c := sizeClass(cap(b))
	if cap(b) != 1<<c {
		return // not one of ours
	}
	buffers[c].Put(&b)
}
