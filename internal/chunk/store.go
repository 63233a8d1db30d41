// Package chunk stores backup data at the backup site as content-addressed,
// gzip-compressed chunks in a JetStream stream, one message per chunk on
// subject ferry.chunk.<sha256>. A chunk is written once and then found by its
// hash, so identical data of other images, VMs or retried backups never
// crosses the link again. Every read checks the hash of the decompressed
// bytes: a corrupt chunk is an error, never data.
package chunk

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Hash returns the chunk address of raw bytes: hex SHA-256.
func Hash(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// ErrCorrupt marks a chunk whose content does not match its hash, or that
// does not decompress; ErrMissing one that is not in the store.
var (
	ErrCorrupt = errors.New("chunk corrupt")
	ErrMissing = errors.New("chunk missing")
)

// Error names the chunk that failed.
type Error struct {
	Hash string
	Err  error // ErrCorrupt or ErrMissing, wrapped with detail
}

func (e *Error) Error() string { return fmt.Sprintf("chunk %s: %v", e.Hash, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

const rawSizeHeader = "Ferry-Raw-Size"

// storeTimeout bounds one chunk's lookup and store.
const storeTimeout = 30 * time.Second

// Store is the chunk stream seen from either site.
type Store struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	level  int
	seal   Sealer // chunk key: seal.go
}

// DefaultLevel is the gzip level of new chunks unless SetLevel says otherwise.
const DefaultLevel = 6

// Open opens the chunk stream (which bus.SetupBackup creates). New chunks
// are compressed at DefaultLevel.
func Open(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	st, err := js.Stream(ctx, bus.ChunkStream)
	if err != nil {
		hint := "is the backup site's consumer set up? it creates the streams"
		if bus.Unreachable(err) {
			hint = "the backup site's NATS server did not answer: is it up, and the link between the sites?"
		}
		return nil, fmt.Errorf("open chunk stream %s: %w (%s)", bus.ChunkStream, err, hint)
	}
	return &Store{js: js, stream: st, level: DefaultLevel, seal: Plain}, nil
}

// SetLevel sets the gzip level of new chunks (1-9; standard gzip
// output), before the store is used; 0 keeps DefaultLevel.
func (s *Store) SetLevel(level int) error {
	if level == 0 {
		return nil
	}
	if level < gzip.BestSpeed || level > gzip.BestCompression {
		return fmt.Errorf("compression level %d: want 1 (fastest) to 9 (smallest)", level)
	}
	s.level = level
	return nil
}

func subject(hash string) string { return bus.ChunkSubject + "." + hash }

// Has tells whether the store holds the chunk. The stream answers itself
// (its message count on the chunk's subject: one small request, no chunk
// data), so a chunk is "held" exactly when it is stored: no separate index
// write per chunk, and no index entry that outlives its chunk or misses one
// stored just before a crash.
func (s *Store) Has(ctx context.Context, hash string) (bool, error) {
	subj := subject(hash)
	// As long as a store: across a slow link the lookup waits behind the
	// chunks in flight (JetStream's default would give up after 5 s).
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	info, err := s.stream.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		return false, fmt.Errorf("look up chunk %s: %w", hash, err)
	}
	return info.State.Subjects[subj] > 0, nil
}

// Put compresses raw and stores it under hash (which must be Address(raw)). It
// returns the compressed size. Storing a chunk twice is harmless: the
// stream keeps one message per subject. (No Nats-Msg-Id: it would make
// JetStream drop the resend of a chunk that was removed as corrupt.)
func (s *Store) Put(ctx context.Context, hash string, raw []byte) (int, error) {
	buf := outBuffers.Get().(*bytes.Buffer)
	defer outBuffers.Put(buf)
	if err := s.compress(buf, raw); err != nil {
		return 0, fmt.Errorf("compress chunk %s: %w", hash, err)
	}
	return buf.Len(), s.publish(ctx, hash, buf.Bytes(), len(raw))
}

// publish stores data, the gzip of rawSize bytes that hash to hash, and
// waits for the stream's acknowledgement. The bytes are sent by the time
// it returns.
func (s *Store) publish(ctx context.Context, hash string, data []byte, rawSize int) error {
	msg := nats.NewMsg(subject(hash))
	stored, release := s.sealed(hash, data) // chunk key: seal.go
	defer release()
	msg.Data = stored
	msg.Header.Set(rawSizeHeader, strconv.Itoa(rawSize))
	// A store that has begun runs to its end even if the caller is being
	// cancelled, so that what was sent is not wasted.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	if _, err := s.js.PublishMsg(sctx, msg, jetstream.WithExpectStream(bus.ChunkStream)); err != nil {
		return fmt.Errorf("store chunk %s (%d bytes compressed): %w", hash, len(data), err)
	}
	return nil
}

// compress gzips raw at the store's level.
func (s *Store) compress(buf *bytes.Buffer, raw []byte) error { return compress(buf, raw, s.level) }

// compress gzips raw: at level when a quick look says it will shrink, else
// as stored blocks, which is still standard gzip but costs no CPU on data
// that is already compressed or encrypted. One stream per chunk on one core:
// the sender compresses as many chunks at once as there are cores.
func compress(buf *bytes.Buffer, raw []byte, level int) error {
	buf.Reset()
	buf.Grow(len(raw) + len(raw)/64 + 1024)
	if !compressible(raw) {
		zw, err := gzip.NewWriterLevel(buf, gzip.NoCompression)
		if err != nil {
			return err
		}
		if _, err := zw.Write(raw); err != nil {
			return err
		}
		return zw.Close()
	}
	zw := gzipWriter(level, buf)
	defer gzipWriters[level].Put(zw)
	if _, err := zw.Write(raw); err != nil {
		return err
	}
	return zw.Close()
}

// gzipWriters holds a pool per level: a deflate state is about 1 MiB.
var gzipWriters [gzip.BestCompression + 1]sync.Pool

// gzipWriter returns a reused gzip writer at level (1-9), writing to w.
func gzipWriter(level int, w io.Writer) *gzip.Writer {
	if zw, ok := gzipWriters[level].Get().(*gzip.Writer); ok {
		zw.Reset(w)
		return zw
	}
	zw, _ := gzip.NewWriterLevel(w, level) // cannot fail at a valid level
	return zw
}

// Chunks are compressed into reused buffers and sampled with reused
// compressors: a fresh 4 MiB buffer and a fresh deflate state per chunk
// were most of what the garbage collector had to clear during a backup.
var (
	outBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}
	samplers   = sync.Pool{New: func() any {
		fw, _ := flate.NewWriter(io.Discard, flate.BestSpeed) // cannot fail at a valid level
		return fw
	}}
)

// compressible compresses three small samples of raw at the fastest level
// and says whether they shrank by at least 3%.
func compressible(raw []byte) bool {
	const sample = 16 << 10
	if len(raw) <= 3*sample {
		return true // small: compressing costs little either way
	}
	var n countWriter
	fw := samplers.Get().(*flate.Writer)
	defer samplers.Put(fw)
	fw.Reset(&n)
	for _, off := range []int{0, len(raw)/2 - sample/2, len(raw) - sample} {
		_, _ = fw.Write(raw[off : off+sample])
	}
	_ = fw.Close()
	return n < 3*sample*97/100
}

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// Get fetches, decompresses and verifies a chunk, appending its bytes to
// dst[:0]. Any mismatch is an *Error wrapping ErrCorrupt; nothing of a
// corrupt chunk is returned. An address that is not a chunk's is
// ferry.ErrInvalid.
func (s *Store) Get(ctx context.Context, hash string, dst []byte) ([]byte, error) {
	if err := checkHash(hash); err != nil {
		return nil, err
	}
	m, err := s.stream.GetLastMsgForSubject(ctx, subject(hash))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, &Error{Hash: hash, Err: fmt.Errorf("%w: not in stream %s (it may have aged out before the import)", ErrMissing, bus.ChunkStream)}
	}
	if err != nil {
		return nil, fmt.Errorf("fetch chunk %s: %w", hash, err)
	}
	body, err := s.open(hash, m.Data) // chunk key: seal.go
	if err != nil {
		return nil, err
	}
	return decode(s.seal, hash, body, m.Header.Get(rawSizeHeader), dst)
}

func decode(seal Sealer, hash string, data []byte, rawSize string, dst []byte) ([]byte, error) {
	corrupt := func(format string, args ...any) error {
		return &Error{Hash: hash, Err: fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)}
	}
	size, err := strconv.Atoi(rawSize)
	if err != nil || size < 0 || size > bus.MaxChunkSize {
		return nil, corrupt("bad %s header %q", rawSizeHeader, rawSize)
	}
	// Reading needs no parallelism: klauspost's gzip reader is the fastest
	// single stream decoder of the same standard format.
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, corrupt("not gzip: %v", err)
	}
	defer func() { _ = zr.Close() }()
	if cap(dst) < size {
		dst = make([]byte, size)
	}
	dst = dst[:size]
	if _, err := io.ReadFull(zr, dst); err != nil {
		return nil, corrupt("decompress: %v", err)
	}
	// Reading to the end checks gzip's own trailer (CRC-32 and length) too.
	extra, err := io.Copy(io.Discard, io.LimitReader(zr, 1))
	if err != nil {
		return nil, corrupt("decompress: %v", err)
	}
	if extra != 0 {
		return nil, corrupt("more than the %d bytes its header announces", size)
	}
	if got := seal.Address(dst); got != hash {
		return nil, corrupt("content hashes to %s", got)
	}
	return dst, nil
}

// checkHash refuses an address that is not a chunk's: it would name a
// subject token, and a forged one ('>', "a.b") could reach other chunks.
func checkHash(hash string) error {
	if !ferry.IsChunkHash(hash) {
		return ferry.Invalid("%.80q is not a chunk address (64 hex digits)", hash)
	}
	return nil
}

// Remove drops a chunk (a corrupt one, so that it is sent again).
func (s *Store) Remove(ctx context.Context, hash string) error {
	if err := checkHash(hash); err != nil {
		return err
	}
	if err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(subject(hash))); err != nil {
		return fmt.Errorf("remove chunk %s: %w", hash, err)
	}
	return nil
}
