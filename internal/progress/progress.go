// Package progress reports the advance of long work (bytes of a diff, a
// backup, a restore) through one small interface, so the work itself never
// prints. A Meter draws a one-line bar with rate and ETA on a terminal.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// Reporter is what long-running work tells about itself. Implementations
// must be safe for concurrent use.
type Reporter interface {
	// SetTotal announces (or revises) the number of bytes the work expects.
	SetTotal(bytes uint64)
	// Add records bytes done.
	Add(bytes uint64)
}

// Discard is a Reporter that ignores everything.
var Discard Reporter = discard{}

type discard struct{}

func (discard) SetTotal(uint64) {}
func (discard) Add(uint64)      {}

// Meter counts bytes and, when started on a terminal, redraws a status line.
type Meter struct {
	label string
	total atomic.Uint64
	done  atomic.Uint64
	start time.Time

	out  io.Writer
	stop chan struct{}
	wg   sync.WaitGroup
}

// NewMeter returns a Meter that draws on out every interval; a nil out counts
// silently (for scripts and logs, where a redrawn line is noise).
func NewMeter(label string, out io.Writer, interval time.Duration) *Meter {
	m := &Meter{label: label, start: time.Now(), out: out, stop: make(chan struct{})}
	if out != nil {
		m.wg.Add(1)
		go m.loop(interval)
	}
	return m
}

// StderrIfTerminal returns os.Stderr when it is a terminal and the caller has
// not asked for quiet, else nil: progress on a terminal, silence in pipes.
func StderrIfTerminal(noProgress bool) io.Writer {
	if noProgress || !term.IsTerminal(int(os.Stderr.Fd())) {
		return nil
	}
	return os.Stderr
}

func (m *Meter) SetTotal(n uint64) { m.total.Store(n) }
func (m *Meter) Add(n uint64)      { m.done.Add(n) }

// Done returns the bytes counted so far.
func (m *Meter) Done() uint64 { return m.done.Load() }

// Elapsed returns the time since the meter was made.
func (m *Meter) Elapsed() time.Duration { return time.Since(m.start) }

// Finish stops redrawing and leaves a final line.
func (m *Meter) Finish() {
	if m.out == nil {
		return
	}
	close(m.stop)
	m.wg.Wait()
	fmt.Fprintf(m.out, "\r%s\n", m.line())
}

func (m *Meter) loop(interval time.Duration) {
	defer m.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			fmt.Fprintf(m.out, "\r%s\x1b[K", m.line())
		}
	}
}

func (m *Meter) line() string {
	done, total := m.done.Load(), m.total.Load()
	secs := time.Since(m.start).Seconds()
	rate := 0.0
	if secs > 0 {
		rate = float64(done) / secs
	}
	s := fmt.Sprintf("%s: %s", m.label, Bytes(done))
	if total > 0 {
		pct := 100 * float64(done) / float64(total)
		if pct > 100 {
			pct = 100
		}
		s += fmt.Sprintf(" / %s (%.0f%%)", Bytes(total), pct)
	}
	s += fmt.Sprintf(", %s/s", Bytes(uint64(rate)))
	if total > done && rate > 0 {
		eta := time.Duration(float64(total-done)/rate) * time.Second
		s += fmt.Sprintf(", ETA %s", eta.Round(time.Second))
	}
	return s
}

// Bytes formats n with a binary unit, the way operators read disk sizes.
func Bytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for v := n / unit; v >= unit && exp < 5; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// CountReader reports every byte read from r to rep.
func CountReader(r io.Reader, rep Reporter) io.Reader { return countReader{r, rep} }

type countReader struct {
	r   io.Reader
	rep Reporter
}

func (c countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.rep.Add(uint64(n))
	return n, err
}
