package consumer_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/chunk"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/recovery"
	"github.com/ferry-dr/ferry/internal/state"
	"github.com/ferry-dr/ferry/publisher"
	"github.com/nats-io/nats.go/jetstream"
)

func chunkKey(t testing.TB, seed byte) *chunk.Keyed {
	t.Helper()
	k, err := chunk.NewKeyed(bytes.Repeat([]byte{seed}, chunk.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// keyedPipeline is newPipeline with the publisher and the consumer holding
// chunk key k.
func keyedPipeline(t testing.TB, name string, k chunk.Sealer) *pipeline {
	t.Helper()
	source, _ := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{Name: name}))
	pub, err := publisher.New(context.Background(), source, p.pubConn, publisher.Options{Log: testLogger(t), ChunkKey: k})
	if err != nil {
		t.Fatal(err)
	}
	p.pub, p.consOpts.ChunkKey = pub, k
	return p
}

// markedImage makes an image (named after prefix) of incompressible data,
// the same every time, (stored as is when
// chunks are not encrypted) with marker in every 4 MiB window, and returns
// the plain SHA-256 of each window: the chunk addresses without a key.
func markedImage(t *testing.T, prefix string, size uint64, marker []byte) (ferry.ImageSpec, []string) {
	t.Helper()
	source, _ := cephtest.Sites(t)
	img := cephtest.Image(t, source, prefix, size)
	data := randomBytes(rand.New(rand.NewPCG(41, 41)), int(size))
	var sums []string
	for off := 0; off < len(data); off += 4 * mib {
		copy(data[off+mib:], marker)
		sums = append(sums, chunk.Hash(data[off:off+4*mib]))
	}
	cephtest.Write(t, source, img, 0, data)
	return img, sums
}

// TestChunkKeyBackups: with a chunk key at both sites, a full and an
// incremental backup are byte-identical to their source; the chunk stream
// holds no plaintext and no subject names a plain SHA-256 of a chunk; a
// second image of the same data sends no data chunk (dedup works under the
// key). Scrub checks the backups with the key, and refuses without it or
// with another (every chunk would look corrupt).
func TestChunkKeyBackups(t *testing.T) {
	key := chunkKey(t, 1)
	p := keyedPipeline(t, "chunk-key", key)
	p.startConsumer()
	marker := []byte("FERRY-CHUNK-KEY-TEST-MARKER")
	img, sums := markedImage(t, "vm", 12*mib, marker)
	p.backupNow(img) // full; backupNow compares it with its source
	twin, _ := markedImage(t, "twin", 12*mib, marker)
	m, _ := p.backupNow(twin)
	if m.Stats.Chunks == 0 || m.Stats.ChunksSent != 0 {
		t.Fatalf("backup of an image of the same data: %d of %d data chunks sent, want none (dedup)", m.Stats.ChunksSent, m.Stats.Chunks)
	}
	scribble(t, img, 12*mib, rand.New(rand.NewPCG(42, 42)), 8)
	p.backupNow(img) // incremental

	_, backup := cephtest.Sites(t)
	records, err := state.OpenScrubRecords(context.Background(), p.consConn.Backup)
	if err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]chunk.Sealer{"the key": key, "no key": nil, "another key": chunkKey(t, 2)} {
		rep, err := recovery.Scrub(context.Background(), recovery.ScrubOptions{Backup: backup, Records: records, Image: img, ChunkKey: k}, nil)
		if k == key && (err != nil || !rep.Clean() || len(rep.Checked) != 2) {
			t.Fatalf("scrub with %s: %+v, %v; want 2 snapshots checked, clean", name, rep, err)
		}
		if k != key && (err == nil || !strings.Contains(err.Error(), "chunk key "+key.KeyID())) {
			t.Fatalf("scrub with %s: %v, want a refusal naming key %s", name, err, key.KeyID())
		}
	}

	msgs := 0
	eachMessage(t, chunkStream(t, p), func(m jetstream.Msg) {
		msgs++
		if bytes.Contains(m.Data(), marker) {
			t.Fatalf("chunk message %s holds plaintext", m.Subject())
		}
		for _, s := range sums {
			if strings.Contains(m.Subject(), s) {
				t.Fatalf("chunk subject %s names the plain SHA-256 of a chunk", m.Subject())
			}
		}
	})
	if msgs < len(sums) {
		t.Fatalf("%d chunk messages, want at least %d", msgs, len(sums))
	}
}

// TestChunkKeyMismatchGivesUp: a consumer with another chunk key than the
// publisher's, or none, refuses the backup on its first attempt with an
// error naming the key, leaves the backup image as it was, and keeps the
// chunks (it does not ask for them again: that cannot help). With the
// publisher switched to the consumer's key (a key rotated at both sites),
// the next incremental applies on the same chain.
func TestChunkKeyMismatchGivesUp(t *testing.T) {
	for name, consumerKey := range map[string]chunk.Sealer{"other key": chunkKey(t, 2), "no key": chunk.Plain} {
		t.Run(name, func(t *testing.T) {
			_, backup := cephtest.Sites(t)
			p := keyedPipeline(t, "chunk-key-mismatch-"+strings.ReplaceAll(name, " ", "-"), chunkKey(t, 1))
			p.startConsumer()
			img, _ := markedImage(t, "vm", 8*mib, []byte("marker"))
			first, _ := p.backupNow(img)
			p.stopConsumer()

			// Were the refusal retried (as a corrupt chunk is), the wait
			// below would time out long before a give-up.
			p.consOpts.ChunkKey, p.consOpts.MaxAttempts, p.consOpts.RetryDelay = consumerKey, 1000, 10*time.Minute
			p.startConsumer()
			scribble(t, img, 8*mib, rand.New(rand.NewPCG(43, 43)), 4)
			m := p.send(snapshot(t, img))
			err := p.waitRefused(m)
			if !errors.Is(err, publisher.ErrGivenUp) || !strings.Contains(err.Error(), "chunk key") || !strings.Contains(err.Error(), m.ExtentPages[0]) {
				t.Fatalf("refusal %v: want a give-up naming the chunk key and chunk %s", err, m.ExtentPages[0])
			}
			if got := ferrySnapshots(t, backup, img); len(got) != 1 || got[0] != first.ToSnap {
				t.Fatalf("backup image snapshots %v after the refusal, want only %s", got, first.ToSnap)
			}
			cephtest.RequireSameContent(t, backup, img.AtSnap(first.ToSnap), backup, img)
			if has, err := chunkStore(t, p).Has(context.Background(), m.ExtentPages[0]); err != nil || !has {
				t.Fatalf("page %s after the refusal: in the store %v (%v); want it kept", m.ExtentPages[0], has, err)
			}

			source, _ := cephtest.Sites(t)
			pub, err := publisher.New(context.Background(), source, p.pubConn, publisher.Options{Log: testLogger(t), ChunkKey: consumerKey})
			if err != nil {
				t.Fatal(err)
			}
			p.pub = pub
			if next, _ := p.backupNow(img); next.FromSnap != first.ToSnap {
				t.Fatalf("backup after the keys agree again: from %q, want an incremental from %s", next.FromSnap, first.ToSnap)
			}
		})
	}
}

// eachMessage calls f with every message in stream.
func eachMessage(t testing.TB, stream jetstream.Stream, f func(jetstream.Msg)) {
	t.Helper()
	ctx := context.Background()
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for range info.State.Msgs {
		m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		f(m)
	}
}
