// Package wanlink is an emulated WAN link for tests and benchmarks: a TCP
// relay on loopback that delays each direction by half a round-trip time,
// optionally paces it to a bandwidth, counts the bytes that cross it, and can
// be cut and brought back. Kernels without netem need it in user space.
//
// Each direction is a delay line, not stop-and-wait: a reader timestamps
// what it reads and queues it, a writer delivers each piece once its delay
// has passed, so a whole bandwidth-delay product is in flight at once, as on
// a real link. A bandwidth limit paces the reader (a token bucket), so the
// sender meets back pressure the way it would at a bottleneck.
//
// It is a test tool: nothing in the shipped binary imports it.
package wanlink

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	segmentSize = 64 << 10 // largest read, the unit of the delay line
	// maxQueued bounds the bytes in one direction's delay line: a 100 ms
	// one-way delay at 2.5 GB/s. A reader waits when it is full.
	maxQueued = 256 << 20
	// burst is how far ahead of its rate a paced reader may run.
	burst = 10 * time.Millisecond
)

// Link relays connections accepted on its own loopback address to a target
// address. Its methods are safe for concurrent use.
type Link struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	oneWay time.Duration // half the round trip
	rate   float64       // bytes per second; 0: unlimited
	down   bool          // refuse new connections
	closed bool
	conns  map[*relay]struct{}
	cutAt  int64 // total bytes after which the link goes down; 0: never
	cutCh  chan struct{}
	// When each direction's bytes so far have left, for pacing.
	toClock, fromClock time.Time

	toTarget, fromTarget atomic.Int64 // bytes delivered, per direction
	accepted             atomic.Int64
	wg                   sync.WaitGroup
}

// Listen starts a link on a free loopback port that relays to target.
func Listen(target string) (*Link, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("wanlink: listen on loopback: %w", err)
	}
	l := &Link{ln: ln, target: target, conns: map[*relay]struct{}{}}
	l.wg.Add(1)
	go l.accept()
	return l, nil
}

// Addr is the host:port to connect to instead of the target.
func (l *Link) Addr() string { return l.ln.Addr().String() }

// SetRTT sets the round-trip time the link adds (each direction half of it).
// It applies to what is read from now on.
func (l *Link) SetRTT(rtt time.Duration) {
	l.mu.Lock()
	l.oneWay = rtt / 2
	l.mu.Unlock()
}

// SetBandwidth limits each direction to bitsPerSecond (0: no limit), shared
// by all the link's connections as on one wire.
func (l *Link) SetBandwidth(bitsPerSecond int64) {
	l.mu.Lock()
	l.rate = float64(bitsPerSecond) / 8
	l.mu.Unlock()
}

// Bytes returns the bytes delivered so far toward the target (what the
// connecting side sent) and from it.
func (l *Link) Bytes() (toTarget, fromTarget int64) {
	return l.toTarget.Load(), l.fromTarget.Load()
}

// Accepted returns how many connections the link has relayed (refused ones
// not counted).
func (l *Link) Accepted() int64 { return l.accepted.Load() }

// Cut resets every open connection; what was in flight is lost. New
// connections are still accepted.
func (l *Link) Cut() {
	l.mu.Lock()
	rs := l.takeConns()
	l.mu.Unlock()
	for _, r := range rs {
		r.reset()
	}
}

// Down cuts every connection and refuses new ones until Up.
func (l *Link) Down() {
	l.mu.Lock()
	l.down = true
	l.mu.Unlock()
	l.Cut()
}

// Up accepts connections again after Down or a CutAfter.
func (l *Link) Up() {
	l.mu.Lock()
	l.down = false
	l.mu.Unlock()
}

// CutAfter takes the link down (as Down) once n more bytes, counted in both
// directions, have been delivered: the byte that reaches n is the last one
// through. The channel closes when that has happened.
func (l *Link) CutAfter(n int64) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	to, from := l.Bytes()
	l.cutAt = to + from + n
	l.cutCh = make(chan struct{})
	return l.cutCh
}

// Close stops accepting, resets every connection and waits for the relay's
// goroutines to end.
func (l *Link) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	err := l.ln.Close()
	l.Cut()
	l.wg.Wait()
	return err
}

// takeConns empties the connection set; l.mu must be held.
func (l *Link) takeConns() []*relay {
	rs := make([]*relay, 0, len(l.conns))
	for r := range l.conns {
		rs = append(rs, r)
	}
	clear(l.conns)
	return rs
}

func (l *Link) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return // closed
		}
		l.mu.Lock()
		refuse := l.down || l.closed
		l.mu.Unlock()
		if refuse {
			resetConn(c)
			continue
		}
		l.wg.Add(1)
		go l.serve(c)
	}
}

func (l *Link) serve(client net.Conn) {
	defer l.wg.Done()
	server, err := net.DialTimeout("tcp", l.target, 5*time.Second)
	if err != nil {
		resetConn(client)
		return
	}
	r := &relay{client: client, server: server}
	l.mu.Lock()
	if l.down || l.closed {
		l.mu.Unlock()
		r.reset()
		return
	}
	l.conns[r] = struct{}{}
	l.mu.Unlock()
	l.accepted.Add(1)

	var dirs sync.WaitGroup
	dirs.Add(2)
	go func() { defer dirs.Done(); l.pipe(r, client, server, &l.toTarget, &l.toClock) }()
	go func() { defer dirs.Done(); l.pipe(r, server, client, &l.fromTarget, &l.fromClock) }()
	dirs.Wait()
	l.mu.Lock()
	delete(l.conns, r)
	l.mu.Unlock()
	client.Close()
	server.Close()
}

// relay is one relayed connection.
type relay struct {
	client, server net.Conn
	once           sync.Once
}

// reset closes both ends at once, with a TCP reset where the kernel allows.
func (r *relay) reset() {
	r.once.Do(func() {
		resetConn(r.client)
		resetConn(r.server)
	})
}

func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

// segment is one read, due for delivery at due.
type segment struct {
	data []byte
	due  time.Time
}

// pipe relays src to dst through a delay line paced on clock and counts
// into n.
func (l *Link) pipe(r *relay, src, dst net.Conn, n *atomic.Int64, clock *time.Time) {
	q := make(chan segment, maxQueued/segmentSize)
	var readErr error // set before q closes
	go func() {
		readErr = l.read(src, q, clock)
		close(q)
	}()
	failed := false // ended before q closed: readErr is not set yet
	for s := range q {
		if d := time.Until(s.due); d > 0 {
			time.Sleep(d)
		}
		data, cut, down := l.admit(s.data, n)
		if down {
			failed = true
			break
		}
		k, err := dst.Write(data)
		n.Add(int64(k - len(data))) // admit counted all of it
		if cut {
			l.Cut() // admit has taken the link down
		}
		if err != nil || cut {
			failed = true
			break
		}
	}
	if failed || readErr != io.EOF {
		// A reset, a cut or a failed write, not an orderly end: pass it
		// on, and let the reader end.
		r.reset()
		for range q {
		}
		return
	}
	// src ended in order: pass the half close on.
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// admit counts data into n as delivered, clipped to a pending CutAfter. cut
// reports that data is the last piece through (the link is now down); down
// that the link was down already and nothing may be delivered.
func (l *Link) admit(data []byte, n *atomic.Int64) (_ []byte, cut, down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return nil, false, true
	}
	if l.cutAt != 0 {
		to, from := l.Bytes()
		if left := l.cutAt - to - from; left <= int64(len(data)) {
			data, cut = data[:max(0, left)], true
			l.cutAt, l.down = 0, true
			close(l.cutCh)
		}
	}
	n.Add(int64(len(data)))
	return data, cut, false
}

// read fills the delay line from src, paced to the link's rate on clock
// (its direction's, shared by all connections; l.mu guards it), until src
// ends or fails, and returns why it ended.
func (l *Link) read(src net.Conn, q chan<- segment, clock *time.Time) error {
	buf := make([]byte, segmentSize)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			data := buf[:k]
			if k < segmentSize/4 {
				// A small read (a ping, an ack) gets its own small copy,
				// so a queue of them does not hold 64 KiB each.
				data = bytes.Clone(data)
			} else {
				buf = make([]byte, segmentSize)
			}
			l.mu.Lock()
			now := time.Now()
			sent, wait := now, time.Duration(0)
			if l.rate > 0 {
				// Token bucket: the bytes leave when the link has had the
				// time to carry them and all before them, at most burst
				// ahead of now.
				*clock = later(*clock, now.Add(-burst)).Add(time.Duration(float64(k) / l.rate * float64(time.Second)))
				wait, sent = clock.Sub(now)-burst, later(*clock, now)
			}
			due := sent.Add(l.oneWay)
			l.mu.Unlock()
			if wait > 0 {
				time.Sleep(wait)
			}
			q <- segment{data: data, due: due}
		}
		if err != nil {
			return err
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
