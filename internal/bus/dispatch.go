package bus

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The bounds of one Dispatch. Every message it holds is a message the
// server has handed out and waits to see acked, so these bounds also keep a
// hostile flood (junk messages on thousands of subjects) from growing a
// daemon: what does not fit waits on the server.
const (
	// MaxHandlers is how many images are handled at once; the others'
	// messages wait in their queues, without a goroutine.
	MaxHandlers = 32
	// MaxQueued and MaxQueuedBytes bound the messages (and their payloads)
	// waiting in all queues; past them Dispatch stops pulling until a
	// handler takes one. Handlers of every image take from their own
	// queues, so the wait ends as soon as any of them moves on.
	MaxQueued      = 4096
	MaxQueuedBytes = 64 << 20
	// MaxQueuedPerImage bounds one image's queue: further messages of that
	// image are handed back with BusyDelay, so that one image's flood does
	// not stop the others' messages from being pulled. A hand-back counts
	// as a delivery in the message's metadata (the consumer's attempts):
	// only a flood far beyond what one image's backups make reaches it.
	MaxQueuedPerImage = 256
	BusyDelay         = 30 * time.Second
)

// defaultAckWait is JetStream's, for a consumer whose info says none.
const defaultAckWait = 30 * time.Second

// Dispatch pulls messages from cons and hands each to handle: messages of
// one image one at a time and in order, different images in parallel (every
// Ferry subject is ferry.<kind>.<image key>), at most MaxHandlers at once.
// An image's goroutine and queue exist only while it has messages. It
// returns nil when ctx ends, and an error when the consumer or the NATS
// connection is gone for good (a daemon must not end as if asked to).
func Dispatch(ctx context.Context, cons jetstream.Consumer, handle func(context.Context, jetstream.Msg)) error {
	msgs, err := cons.Messages(jetstream.PullMaxMessages(64))
	if err != nil {
		return connClosed(err)
	}
	stopPull := context.AfterFunc(ctx, msgs.Stop)
	defer stopPull()

	d := newDispatcher(ctx, handle)
	defer d.stop()
	go d.keepWaitingAlive(ackWait(cons) / 3)
	for {
		msg, err := msgs.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) && !closed(err) {
				return nil
			}
			return connClosed(err)
		}
		d.add(msg)
	}
}

// Dispatcher is one consumer and its handler, for DispatchAll.
type Dispatcher struct {
	Consumer jetstream.Consumer
	Handle   func(context.Context, jetstream.Msg)
}

// DispatchAll runs a Dispatch for each of ds until ctx ends or one of them
// ends, which ends the others. It returns only once every handler has
// returned: a daemon's caller closes its Ceph connection next, and librbd
// aborts the process when its connection goes away under a running export
// or import. The error is the first one any Dispatch returned.
func DispatchAll(ctx context.Context, ds ...Dispatcher) error {
	fns := make([]func(context.Context) error, len(ds))
	for i, d := range ds {
		fns[i] = func(ctx context.Context) error { return Dispatch(ctx, d.Consumer, d.Handle) }
	}
	return runAll(ctx, fns...)
}

// runAll runs fns concurrently; the first to return cancels the others.
// It waits for all of them and returns the first error.
func runAll(ctx context.Context, fns ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(fns))
	for _, fn := range fns {
		go func() { errs <- fn(ctx) }()
	}
	var first error
	for range fns {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
		cancel()
	}
	return first
}

// ErrConnClosed: the NATS client gave up its connection (the server closed
// it for a protocol violation, or reconnecting ran out). A daemon exits
// with it, not quietly, so that its supervisor restarts it.
var ErrConnClosed = errors.New("NATS connection closed for good")

// closed tells whether err says the connection is closed; nats and
// jetstream each have their own error for it.
func closed(err error) bool {
	return errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrConnectionClosed)
}

// connClosed marks err with ErrConnClosed when it comes from a closed
// connection.
func connClosed(err error) error {
	if closed(err) {
		return fmt.Errorf("%w: %w", ErrConnClosed, err)
	}
	return err
}

func ackWait(cons jetstream.Consumer) time.Duration {
	if info := cons.CachedInfo(); info != nil && info.Config.AckWait > 0 {
		return info.Config.AckWait
	}
	return defaultAckWait
}

// dispatcher holds the per-image queues of one Dispatch.
type dispatcher struct {
	ctx    context.Context
	handle func(context.Context, jetstream.Msg)
	wg     sync.WaitGroup
	done   chan struct{} // closed by stop: ends keepWaitingAlive

	mu          sync.Mutex
	space       *sync.Cond // signalled when a message leaves a queue
	images      map[string]*imageQueue
	ready       []*imageQueue // have messages, wait for a handler
	running     int
	queued      int
	queuedBytes int
}

type imageQueue struct {
	key  string
	msgs []jetstream.Msg
}

func newDispatcher(ctx context.Context, handle func(context.Context, jetstream.Msg)) *dispatcher {
	d := &dispatcher{ctx: ctx, handle: handle, images: map[string]*imageQueue{}, done: make(chan struct{})}
	d.space = sync.NewCond(&d.mu)
	context.AfterFunc(ctx, func() {
		d.mu.Lock()
		d.space.Broadcast()
		d.mu.Unlock()
	})
	return d
}

// imageKey is the image part of a Ferry subject.
func imageKey(subject string) string {
	if parts := strings.SplitN(subject, ".", 3); len(parts) == 3 {
		return parts[2]
	}
	return subject
}

// add queues msg for its image, waiting while the queues are full.
func (d *dispatcher) add(msg jetstream.Msg) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for (d.queued >= MaxQueued || d.queuedBytes >= MaxQueuedBytes) && d.ctx.Err() == nil {
		d.space.Wait()
	}
	if d.ctx.Err() != nil {
		_ = msg.Nak() // shutting down: the next one takes it at once
		return
	}
	key := imageKey(msg.Subject())
	q := d.images[key]
	if q == nil {
		q = &imageQueue{key: key}
		d.images[key] = q
		d.ready = append(d.ready, q)
	} else if len(q.msgs) >= MaxQueuedPerImage {
		_ = msg.NakWithDelay(BusyDelay)
		return
	}
	q.msgs = append(q.msgs, msg)
	d.queued++
	d.queuedBytes += len(msg.Data())
	d.startReady()
}

// startReady starts handlers for waiting images while there is room.
// d.mu is held.
func (d *dispatcher) startReady() {
	for d.running < MaxHandlers && len(d.ready) > 0 {
		q := d.ready[0]
		d.ready[0] = nil
		d.ready = d.ready[1:]
		d.running++
		d.wg.Add(1)
		go d.work(q)
	}
}

// work handles q's messages until q is empty, then forgets q.
func (d *dispatcher) work(q *imageQueue) {
	defer d.wg.Done()
	for {
		msg := d.next(q)
		if msg == nil {
			return
		}
		if d.ctx.Err() != nil {
			_ = msg.Nak()
			continue
		}
		h := &handling{subject: msg.Subject(), since: time.Now()}
		inFlight.Store(h, struct{}{})
		d.handle(d.ctx, msg)
		inFlight.Delete(h)
	}
}

// inFlight holds the messages being handled in this process, for a daemon
// that has to say what it still waits for when it cannot stop.
var inFlight sync.Map // *handling -> struct{}

type handling struct {
	subject string
	since   time.Time
}

// InFlight names the messages whose handlers run, with how long each has run.
func InFlight() []string {
	var names []string
	inFlight.Range(func(k, _ any) bool {
		h := k.(*handling)
		names = append(names, fmt.Sprintf("%s (for %s)", h.subject, time.Since(h.since).Round(time.Second)))
		return true
	})
	sort.Strings(names)
	return names
}

// next takes q's first message; with none left it forgets q, frees the
// handler's place and returns nil.
func (d *dispatcher) next(q *imageQueue) jetstream.Msg {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(q.msgs) == 0 {
		delete(d.images, q.key)
		d.running--
		d.startReady()
		return nil
	}
	msg := q.msgs[0]
	q.msgs[0] = nil
	q.msgs = q.msgs[1:]
	d.queued--
	d.queuedBytes -= len(msg.Data())
	d.space.Signal()
	return msg
}

// keepWaitingAlive tells the server every interval that the queued
// messages are not forgotten, so that it does not deliver them again while
// they wait for a handler (handlers keep their own message alive).
func (d *dispatcher) keepWaitingAlive(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-d.done:
			return
		case <-t.C:
		}
		d.mu.Lock()
		var waiting []jetstream.Msg
		for _, q := range d.images {
			waiting = append(waiting, q.msgs...)
		}
		d.mu.Unlock()
		for _, m := range waiting {
			_ = m.InProgress()
		}
	}
}

// stop hands back the messages of images that wait for a handler and
// waits for the running handlers, which hand back the rest of their
// queues (ctx has ended, or the pull did).
func (d *dispatcher) stop() {
	d.mu.Lock()
	for _, q := range d.ready {
		for _, m := range q.msgs {
			_ = m.Nak()
		}
		d.queued -= len(q.msgs)
		q.msgs = nil
		delete(d.images, q.key)
	}
	d.ready = nil
	d.mu.Unlock()
	d.wg.Wait()
	close(d.done)
}
