package consumer_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/chunk"
)

// BenchmarkChunkKeyFullBackup is the cost of a chunk key end to end: a
// full backup of 1 GiB of compressible data (4 KiB random, 4 KiB zeros,
// alternating: gzip halves it), without and with a key, each into a store
// of its own (nothing to dedup). It reports the seconds from snapshot
// event to confirmation. Run it alone: go test -tags pacific -run '^$'
// -bench BenchmarkChunkKeyFullBackup -benchtime 1x ./consumer/
func BenchmarkChunkKeyFullBackup(b *testing.B) {
	source, _ := cephtest.Sites(b)
	const size = 1 << 30
	img := cephtest.Image(b, source, "keybench", size)
	r := rand.New(rand.NewPCG(51, 51))
	buf := make([]byte, 64*mib)
	for off := uint64(0); off < size; off += uint64(len(buf)) {
		for i := 0; i < len(buf); i += 8 << 10 {
			copy(buf[i:i+4<<10], randomBytes(r, 4<<10))
			clear(buf[i+4<<10 : i+8<<10])
		}
		cephtest.Write(b, source, img, off, buf)
	}
	buf = nil
	for _, mode := range []struct {
		name string
		key  chunk.Sealer
	}{{"off", nil}, {"on", chunkKey(b, 1)}} {
		b.Run(mode.name, func(b *testing.B) {
			b.StopTimer()
			for i := range b.N {
				p := keyedPipeline(b, "chunk-key-bench-"+mode.name+itoa(i), mode.key)
				p.startConsumer()
				ev := snapshot(b, img)
				ev.Resync = true // a new chain each time: the backup image of the run before stays aside
				b.StartTimer()
				start := time.Now()
				p.waitConfirmed(p.send(ev))
				b.StopTimer()
				b.ReportMetric(time.Since(start).Seconds(), "s/backup")
				p.stopConsumer()
			}
		})
	}
}
