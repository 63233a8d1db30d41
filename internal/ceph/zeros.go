package ceph

// zeroBlock is the grain at which data is checked for zeros, as rbd's
// import-diff does (its default --sparse-size). On export, librbd reports a
// new object as one extent, holes included: without the check a few
// scattered 4 KiB writes would ship whole objects of zeros. On import, a
// zero block becomes a zeroing op instead of a data write, or nothing at
// all on a blank image.
const zeroBlock = 4 << 10

// zeroRuns splits buf (image bytes at off) into alternating runs of zero and
// non-zero blocks, block edges on absolute multiples of zeroBlock, and
// calls fn for each run in order with its bounds in buf.
func zeroRuns(off uint64, buf []byte, fn func(from, to int, zero bool) error) error {
	runStart, runZero := 0, false
	for i := 0; i < len(buf); {
		next := min(len(buf), i+int(zeroBlock-(off+uint64(i))%zeroBlock))
		z := isZero(buf[i:next])
		if i > runStart && z != runZero {
			if err := fn(runStart, i, runZero); err != nil {
				return err
			}
			runStart = i
		}
		runZero = z
		i = next
	}
	if runStart == len(buf) {
		return nil
	}
	return fn(runStart, len(buf), runZero)
}

var zeros = make([]byte, zeroBlock)

func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if string(b[:n]) != string(zeros[:n]) { // compiles to memequal, no allocation
			return false
		}
		b = b[n:]
	}
	return true
}
