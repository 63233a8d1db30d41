package virt

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"libvirt.org/go/libvirt"
)

// ErrClosed is returned by calls on a connection that was closed or lost.
var ErrClosed = errors.New("libvirt connection is closed")

// Conn is a connection to one hypervisor. Done is closed when the
// connection ends for any reason (Close, libvirtd restart, keepalive
// failure), so an owner can reconnect.
type Conn struct {
	uri string

	mu        sync.RWMutex // held for reading by every call, for writing by Close
	conn      *libvirt.Connect
	closed    bool
	callbacks []int

	lost     chan struct{}
	lostOnce sync.Once
	stop     chan struct{} // ends the liveness probe
}

var (
	loopOnce sync.Once
	loopErr  error
)

// startEventLoop registers libvirt's default event loop and runs it for the
// life of the process: libvirt requires it before the first connection for
// events and keepalives to work, and offers no way to stop it.
func startEventLoop() error {
	loopOnce.Do(func() {
		if loopErr = libvirt.EventRegisterDefaultImpl(); loopErr != nil {
			loopErr = fmt.Errorf("register libvirt event loop: %w", loopErr)
			return
		}
		go func() {
			for {
				if err := libvirt.EventRunDefaultImpl(); err != nil {
					slog.Error("libvirt event loop", "error", err)
					time.Sleep(time.Second)
				}
			}
		}()
	})
	return loopErr
}

// probeInterval is how often a connection checks that libvirtd still answers;
// the close callback usually reports a lost connection first.
const probeInterval = 5 * time.Second

// Open connects to uri (qemu:///system, test:///default, ...).
func Open(uri string) (*Conn, error) {
	if err := startEventLoop(); err != nil {
		return nil, err
	}
	lc, err := libvirt.NewConnect(uri)
	if err != nil {
		return nil, fmt.Errorf("connect to libvirt at %s: %w (is libvirtd running, and may this user use it?)", uri, err)
	}
	c := &Conn{uri: uri, conn: lc, lost: make(chan struct{}), stop: make(chan struct{})}
	if err := lc.RegisterCloseCallback(func(_ *libvirt.Connect, reason libvirt.ConnectCloseReason) {
		slog.Warn("libvirt connection closed", "uri", uri, "reason", int(reason))
		c.markLost()
	}); err != nil {
		_, _ = lc.Close()
		return nil, fmt.Errorf("libvirt %s: register close callback: %w", uri, err)
	}
	// Keepalives let the remote driver notice a dead daemon; local drivers
	// (test:///) do not support them, which is fine.
	_ = lc.SetKeepAlive(5, 3)
	go c.probe()
	return c, nil
}

// URI returns the URI the connection was opened with.
func (c *Conn) URI() string { return c.uri }

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.lost }

func (c *Conn) markLost() { c.lostOnce.Do(func() { close(c.lost) }) }

func (c *Conn) probe() {
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-c.lost:
			return
		case <-t.C:
			c.mu.RLock()
			alive := false
			if !c.closed {
				alive, _ = c.conn.IsAlive()
			}
			c.mu.RUnlock()
			if !alive {
				c.markLost()
				return
			}
		}
	}
}

// Close ends the connection and its event callbacks. It is safe to call
// more than once and concurrently with other calls.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	close(c.stop)
	for _, id := range c.callbacks {
		_ = c.conn.DomainEventDeregister(id)
	}
	_ = c.conn.UnregisterCloseCallback()
	_, err := c.conn.Close()
	c.markLost()
	return err
}

// with runs fn on the open connection, or returns ErrClosed.
func (c *Conn) with(fn func(*libvirt.Connect) error) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return ErrClosed
	}
	return fn(c.conn)
}
