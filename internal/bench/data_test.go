package bench

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
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
	randomData   dataKind = iota // every byte random
	halfZero                     // every other 64 KiB block zero (rbd import-diff leaves them holes; every object exists)
	compressible                 // each 512-byte sector: 128 random bytes, then zeros (gzip -6 keeps about 26%; no holes)
)

// sectorData is how many bytes of each sector of compressible data are random.
const sectorData = 128

func (k dataKind) String() string {
	switch k {
	case halfZero:
		return "half-zero"
	case compressible:
		return "compressible"
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
		switch kind {
		case randomData:
			rng.Read(b)
		case compressible:
			for i := int64(0); i < n; i += 512 {
				sec := b[i:min(i+512, n)]
				rng.Read(sec[:min(sectorData, len(sec))])
				clear(sec[min(sectorData, len(sec)):])
			}
		default:
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

// change writes new random data into a fraction of the grain-sized blocks of
// the first size bytes of image, chosen at random, and returns the bytes written.
func change(site *testbed.Site, image string, size, grain int64, fraction float64, seed uint64) (int64, error) {
	blocks := int(size / grain)
	k := max(1, int(float64(blocks)*fraction))
	pick := rand.New(rand.NewPCG(seed, 1)).Perm(blocks)[:k]
	slices.Sort(pick)
	rng := newRand(seed)
	buf := make([]byte, grain)
	i := 0
	err := writeRecords(site, image, func() (record, bool) {
		if i == len(pick) {
			return record{}, false
		}
		rng.Read(buf)
		r := record{off: int64(pick[i]) * grain, data: buf}
		i++
		return r, true
	})
	return int64(k) * grain, err
}

// sparseHash returns a SHA-256 of the non-zero 4 KiB blocks (with their
// offsets) and the size in `rbd export-diff SPEC -`: equal for two images of
// equal content however their data is allocated, and cheap for a thin image
// (a full `rbd export` of 100 GiB reads 100 GiB of zeros).
func sparseHash(site *testbed.Site, spec string) (string, error) {
	cmd, stderr, cancel := command("rbd", append(site.Args(), "export-diff", "--no-progress", site.Spec(spec), "-")...)
	defer cancel()
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	sum, perr := hashDiff(bufio.NewReaderSize(out, mib))
	io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return "", fmt.Errorf("rbd export-diff %s: %w: %s", spec, err, strings.TrimSpace(stderr.String()))
	}
	return sum, perr
}

func hashDiff(r *bufio.Reader) (string, error) {
	const blk = 4 * kib
	head := make([]byte, len("rbd diff v1\n"))
	if _, err := io.ReadFull(r, head); err != nil || string(head) != "rbd diff v1\n" {
		return "", fmt.Errorf("not an rbd diff v1 stream: %q %v", head, err)
	}
	h := sha256.New()
	le := binary.LittleEndian
	var u64 [16]byte
	buf := make([]byte, blk)
	zero := make([]byte, blk)
	for {
		tag, err := r.ReadByte()
		if err != nil {
			return "", err
		}
		switch tag {
		case 'e':
			return hex.EncodeToString(h.Sum(nil)), nil
		case 'f', 't':
			if _, err := io.ReadFull(r, u64[:4]); err != nil {
				return "", err
			}
			if _, err := r.Discard(int(le.Uint32(u64[:4]))); err != nil {
				return "", err
			}
		case 's':
			if _, err := io.ReadFull(r, u64[:8]); err != nil {
				return "", err
			}
			h.Write([]byte{'s'})
			h.Write(u64[:8])
		case 'z':
			if _, err := io.ReadFull(r, u64[:16]); err != nil {
				return "", err
			}
		case 'w':
			if _, err := io.ReadFull(r, u64[:16]); err != nil {
				return "", err
			}
			off, n := le.Uint64(u64[:8]), le.Uint64(u64[8:])
			for n > 0 {
				m := min(n, blk-off%blk)
				b := buf[:m]
				if _, err := io.ReadFull(r, b); err != nil {
					return "", err
				}
				if !bytes.Equal(b, zero[:m]) {
					var o [8]byte
					le.PutUint64(o[:], off)
					h.Write(o[:])
					h.Write(b)
				}
				off, n = off+m, n-m
			}
		default:
			return "", fmt.Errorf("unexpected tag %q in rbd diff v1 stream", tag)
		}
	}
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
