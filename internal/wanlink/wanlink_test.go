package wanlink

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"
)

// serve runs handle for every connection to a fresh loopback listener.
func serve(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); handle(c) }()
		}
	}()
	return ln.Addr().String()
}

func echo(c net.Conn) { io.Copy(c, c) }

func newLink(t *testing.T, target string) *Link {
	t.Helper()
	l, err := Listen(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func dial(t *testing.T, l *Link) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// roundTrip sends data, half-closes and reads the echo back.
func roundTrip(t *testing.T, c *net.TCPConn, data []byte) []byte {
	t.Helper()
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	return got
}

// TestIntegrityAndCount: what goes in comes out unchanged, through a delay
// and a bandwidth limit, and each direction counts exactly its bytes.
func TestIntegrityAndCount(t *testing.T) {
	l := newLink(t, serve(t, echo))
	l.SetRTT(20 * time.Millisecond)
	l.SetBandwidth(400e6)
	data := randomBytes(t, 8<<20+12345)
	got := roundTrip(t, dial(t, l), data)
	if !bytes.Equal(got, data) {
		t.Fatalf("echo through the link: %d bytes back, want the %d sent, unchanged", len(got), len(data))
	}
	to, from := l.Bytes()
	if to != int64(len(data)) || from != int64(len(data)) {
		t.Fatalf("bytes counted %d to the target, %d from it; want %d each", to, from, len(data))
	}
}

// TestDelayHonoured: each round trip of a small message takes at least the
// RTT, and not many times more.
func TestDelayHonoured(t *testing.T) {
	l := newLink(t, serve(t, echo))
	const rtt = 100 * time.Millisecond
	l.SetRTT(rtt)
	c := dial(t, l)
	buf := make([]byte, 1)
	const trips = 5
	t0 := time.Now()
	for range trips {
		if _, err := c.Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(t0)
	if took < trips*rtt || took > 4*trips*rtt {
		t.Fatalf("%d round trips took %v, want between %v and %v", trips, took, trips*rtt, 4*trips*rtt)
	}
}

// TestManyBytesInFlight: a bulk transfer across a long delay costs about one
// delay, not one per read (stop-and-wait would take over 25 s here).
func TestManyBytesInFlight(t *testing.T) {
	done := make(chan int64, 1)
	l := newLink(t, serve(t, func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		c.Write([]byte{'k'})
		done <- n
	}))
	const rtt = 100 * time.Millisecond
	l.SetRTT(rtt)
	c := dial(t, l)
	data := randomBytes(t, 32<<20)
	t0 := time.Now()
	got := roundTrip(t, c, data)
	took := time.Since(t0)
	if n := <-done; n != int64(len(data)) || string(got) != "k" {
		t.Fatalf("sink got %d bytes and answered %q, want %d and \"k\"", n, got, len(data))
	}
	if took < rtt || took > 50*rtt {
		t.Fatalf("32 MiB across a %v link took %v, want between %v and %v", rtt, took, rtt, 50*rtt)
	}
}

// TestBandwidthLimit: two connections at once share the limit; the transfer
// never beats it and gets near it.
func TestBandwidthLimit(t *testing.T) {
	done := make(chan time.Time, 2)
	l := newLink(t, serve(t, func(c net.Conn) {
		io.Copy(io.Discard, c)
		done <- time.Now()
	}))
	const bits = 40e6 // 5 MB/s
	l.SetBandwidth(bits)
	const n = 2 << 20 // per connection
	conns := []*net.TCPConn{dial(t, l), dial(t, l)}
	data := randomBytes(t, n)
	t0 := time.Now()
	for _, c := range conns {
		go func() {
			c.Write(data)
			c.CloseWrite()
		}()
	}
	<-done
	took := (<-done).Sub(t0)
	want := time.Duration(float64(2*n) * 8 / bits * float64(time.Second))
	// The bucket's burst lets the first 10 ms through at once.
	if ratio := took.Seconds() / want.Seconds(); ratio < 0.95 || ratio > 3 {
		t.Fatalf("2 × %d bytes at %.0f Mbit/s took %v, want %v (ratio %.2f, want 0.95..3)", n, bits/1e6, took, want, ratio)
	}
	if to, _ := l.Bytes(); to != 2*n {
		t.Fatalf("%d bytes counted, want %d", to, 2*n)
	}
}

// TestDownAndUp: Down resets open connections and refuses new ones; Up
// lets them through again; SetRTT applies at runtime.
func TestDownAndUp(t *testing.T) {
	l := newLink(t, serve(t, echo))
	c := dial(t, l)
	if got := roundTrip(t, dial(t, l), []byte("before")); string(got) != "before" {
		t.Fatalf("echo %q", got)
	}
	l.Down()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("read on a connection across a link gone down: %v, want it closed", err)
	}
	requireRefused(t, l)
	l.Up()
	l.SetRTT(40 * time.Millisecond)
	t0 := time.Now()
	if got := roundTrip(t, dial(t, l), []byte("after")); string(got) != "after" {
		t.Fatalf("echo after Up: %q", got)
	}
	if took := time.Since(t0); took < 40*time.Millisecond {
		t.Fatalf("round trip after SetRTT(40ms) took %v", took)
	}
	if n := l.Accepted(); n != 3 {
		t.Fatalf("%d connections relayed, want 3 (the refused one not counted)", n)
	}
}

// requireRefused: a new connection is reset, at once or at its first read.
func requireRefused(t *testing.T, l *Link) {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr())
	if err != nil {
		return
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("lost"))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("read on a new connection while the link is down: %v, want it refused", err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestCutAfter: the link goes down after exactly n bytes have crossed.
func TestCutAfter(t *testing.T) {
	got := make(chan int64, 1)
	l := newLink(t, serve(t, func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		got <- n
	}))
	l.SetRTT(10 * time.Millisecond)
	c := dial(t, l)
	const n = 100_000
	cut := l.CutAfter(n)
	go c.Write(randomBytes(t, 1<<20))
	select {
	case <-cut:
	case <-time.After(10 * time.Second):
		t.Fatal("the link was not cut after the bytes crossed")
	}
	if rcvd := <-got; rcvd > n {
		t.Fatalf("the target received %d bytes, more than the %d allowed", rcvd, n)
	}
	if to, from := l.Bytes(); to+from != n {
		t.Fatalf("%d+%d bytes crossed, want exactly %d", to, from, n)
	}
	requireRefused(t, l)
	l.Up()
	if got := roundTrip(t, dial(t, l), nil); len(got) != 0 {
		t.Fatalf("after Up: %q", got)
	}
}
