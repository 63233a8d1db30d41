package bench

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/ferry-dr/ferry/internal/testbed"
)

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30

	blockSize = 64 * kib // grain of the half-zero pattern and of incremental changes
)

// dataKind is what an image is filled with.
type dataKind int

const (
	randomData dataKind = iota // every byte random
	halfZero                   // every other 64 KiB block zero (written as zeros: every object exists)
)

func (k dataKind) String() string {
	if k == halfZero {
		return "half-zero"
	}
	return "random"
}

// record is one 'w' record of an rbd diff v1 stream.
type record struct {
	off  int64
	data []byte
}

// writeRecords applies records (until next returns false) to image at site
// through `rbd import-diff -`: exactly those bytes are written, nothing else.
func writeRecords(site *testbed.Site, image string, next func() (record, bool)) error {
	cmd, stderr, cancel := command("rbd", append(site.Args(), "import-diff", "--no-progress", "-", site.Spec(image))...)
	defer cancel()
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	werr := func() error {
		bw := bufio.NewWriterSize(in, 4*mib)
		if _, err := bw.WriteString("rbd diff v1\n"); err != nil {
			return err
		}
		for {
			r, ok := next()
			if !ok {
				break
			}
			var hdr [17]byte
			hdr[0] = 'w'
			binary.LittleEndian.PutUint64(hdr[1:], uint64(r.off))
			binary.LittleEndian.PutUint64(hdr[9:], uint64(len(r.data)))
			if _, err := bw.Write(hdr[:]); err != nil {
				return err
			}
			if _, err := bw.Write(r.data); err != nil {
				return err
			}
		}
		if err := bw.WriteByte('e'); err != nil {
			return err
		}
		return bw.Flush()
	}()
	in.Close()
	err = cmd.Wait()
	if err == nil {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("write %s at the %s site: %w: %s", image, site.Name, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

func newRand(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return rand.NewChaCha8(s)
}

// fill writes size bytes of kind into image from offset 0.
func fill(site *testbed.Site, image string, size int64, kind dataKind, seed uint64) error {
	rng := newRand(seed)
	buf := make([]byte, 4*mib)
	var off int64
	return writeRecords(site, image, func() (record, bool) {
		if off >= size {
			return record{}, false
		}
		n := min(int64(len(buf)), size-off)
		b := buf[:n]
		if kind == randomData {
			rng.Read(b)
		} else {
			for i := int64(0); i < n; i += blockSize {
				blk := b[i:min(i+blockSize, n)]
				if ((off+i)/blockSize)%2 == 0 {
					rng.Read(blk)
				} else {
					clear(blk)
				}
			}
		}
		r := record{off: off, data: b}
		off += n
		return r, true
	})
}

// change writes new random data into a fraction of the 64 KiB blocks of the
// first size bytes of image, chosen at random, and returns the bytes written.
func change(site *testbed.Site, image string, size int64, fraction float64, seed uint64) (int64, error) {
	blocks := int(size / blockSize)
	k := max(1, int(float64(blocks)*fraction))
	pick := rand.New(rand.NewPCG(seed, 1)).Perm(blocks)[:k]
	slices.Sort(pick)
	rng := newRand(seed)
	buf := make([]byte, blockSize)
	i := 0
	err := writeRecords(site, image, func() (record, bool) {
		if i == len(pick) {
			return record{}, false
		}
		rng.Read(buf)
		r := record{off: int64(pick[i]) * blockSize, data: buf}
		i++
		return r, true
	})
	return int64(k) * blockSize, err
}

// writeAt writes n random bytes at off.
func writeAt(site *testbed.Site, image string, off, n int64, seed uint64) error {
	rng := newRand(seed)
	buf := make([]byte, n)
	rng.Read(buf)
	done := false
	return writeRecords(site, image, func() (record, bool) {
		if done {
			return record{}, false
		}
		done = true
		return record{off: off, data: buf}, true
	})
}
