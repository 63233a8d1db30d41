// Package feed carries the extent pages of a backup in flight from the
// publisher to the consumer, so the backup site imports while the source
// site is still sending.
//
// The publisher starts a feed, publishes the manifest (naming the feed's
// first sequence and its attempt), then one message per extent page once
// that page and every chunk it names are stored, and an end message with
// the backup's figures. While it works it says it is alive every few
// seconds. The consumer follows the feed from that sequence on. Each image
// has one subject, ferry.pages.<pool>.<image>; a retried backup starts a new
// attempt on it, which tells a consumer still following the old attempt to
// stop.
package feed

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/sign"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// AliveInterval is how often a publisher at work says so. A consumer
// gives up a feed after many intervals of silence (see Follow).
const AliveInterval = 5 * time.Second

type kind string

const (
	kindStart kind = "start"
	kindPage  kind = "page"
	kindAlive kind = "alive"
	kindEnd   kind = "end"
	kindAbort kind = "abort"
)

// message is one message of a feed.
type message struct {
	Kind     kind   `json:"kind"`
	BackupID string `json:"backup_id"`
	Attempt  string `json:"attempt"`
	Index    int    `json:"index,omitempty"` // page number, from 0
	Page     string `json:"page,omitempty"`
	End      *End   `json:"end,omitempty"`
	Error    string `json:"error,omitempty"`
}

// End is what the publisher knows once every page is out.
type End struct {
	Pages   int               `json:"pages"`
	Extents int               `json:"extents"`
	Stats   ferry.BackupStats `json:"stats"`
}

// Writer is the publisher's end of a feed.
type Writer struct {
	js       jetstream.JetStream
	subject  string
	backupID string
	attempt  string
	seq      uint64
	next     int
	signer   *sign.Signer
	// pending are the messages published without waiting whose
	// acknowledgement has not been seen yet.
	pending []jetstream.PubAckFuture

	mu      sync.Mutex // one publish at a time keeps the feed in order
	stop    context.CancelFunc
	stopped chan struct{}
}

// Start opens a new attempt of the backup's feed, whose messages signer
// signs (nil: unsigned).
func Start(ctx context.Context, js jetstream.JetStream, img ferry.ImageSpec, backupID string, signer *sign.Signer) (*Writer, error) {
	w := &Writer{js: js, subject: bus.Subject(bus.PageSubject, img.AtSnap("")), backupID: backupID, attempt: newAttempt(), signer: signer}
	ack, err := w.publish(ctx, message{Kind: kindStart})
	if err != nil {
		return nil, err
	}
	w.seq = ack.Sequence
	aliveCtx, stop := context.WithCancel(context.Background())
	w.stop, w.stopped = stop, make(chan struct{})
	go w.sayAlive(aliveCtx)
	return w, nil
}

func newAttempt() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// Seq is the stream sequence of the feed's start: a follower starts there.
func (w *Writer) Seq() uint64 { return w.seq }

// Attempt tells this feed from the feeds of other tries of the same backup.
func (w *Writer) Attempt() string { return w.attempt }

// Page announces the next extent page. It does not wait for the stream's
// acknowledgement (across a WAN that would pace the feed at one page per
// round trip): End waits for them all, and a page lost on the way shows to
// the follower as a gap it refuses.
func (w *Writer) Page(ctx context.Context, hash string) error {
	if err := w.acked(ctx, false); err != nil {
		return err
	}
	if err := w.publishAsync(message{Kind: kindPage, Index: w.next, Page: hash}); err != nil {
		return err
	}
	w.next++
	return nil
}

func (w *Writer) publishAsync(m message) error {
	msg, err := w.message(m)
	if err != nil {
		return err
	}
	w.mu.Lock()
	ack, err := w.js.PublishMsgAsync(msg, jetstream.WithExpectStream(bus.PageStream))
	w.mu.Unlock()
	if err != nil {
		return fmt.Errorf("feed of %s: publish %s: %w", w.backupID, m.Kind, err)
	}
	w.pending = append(w.pending, ack)
	return nil
}

// acked checks the acknowledgements of the messages published without
// waiting, in order: those that have come, or (wait) all of them.
func (w *Writer) acked(ctx context.Context, wait bool) error {
	giveUp := pollNow
	if wait {
		t := time.NewTimer(ackTimeout)
		defer t.Stop()
		giveUp = t.C
	}
	for len(w.pending) > 0 {
		select {
		case <-w.pending[0].Ok():
			w.pending = w.pending[1:]
		case err := <-w.pending[0].Err():
			return fmt.Errorf("feed of %s: a page or the end was not stored: %w", w.backupID, err)
		case <-ctx.Done():
			return ctx.Err()
		case <-giveUp:
			if !wait {
				return nil
			}
			return fmt.Errorf("feed of %s: a page or the end was not acknowledged in %s", w.backupID, ackTimeout)
		}
	}
	return nil
}

// pollNow is a time that has come: acked does not wait for it.
var pollNow = func() <-chan time.Time { c := make(chan time.Time); close(c); return c }()

// ackTimeout bounds End's wait for the acknowledgements.
const ackTimeout = 30 * time.Second

// End closes the feed: every page is out. The end follows the pages
// without waiting for their acknowledgements, and then waits for all.
func (w *Writer) End(ctx context.Context, e End) error {
	w.halt()
	e.Pages = w.next
	if err := w.publishAsync(message{Kind: kindEnd, End: &e}); err != nil {
		return err
	}
	return w.acked(ctx, true)
}

// Abort tells the follower that this attempt will not finish, so it stops
// at once instead of waiting out the silence. Best effort.
func (w *Writer) Abort(cause error) {
	w.halt()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = w.publish(ctx, message{Kind: kindAbort, Error: cause.Error()})
}

func (w *Writer) halt() {
	w.stop()
	<-w.stopped
}

func (w *Writer) sayAlive(ctx context.Context) {
	defer close(w.stopped)
	t := time.NewTicker(AliveInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// A failed beat is not an error: the pages' publishes would fail too.
			_, _ = w.publish(ctx, message{Kind: kindAlive})
		}
	}
}

func (w *Writer) message(m message) (*nats.Msg, error) {
	m.BackupID, m.Attempt = w.backupID, w.attempt
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	msg := nats.NewMsg(w.subject)
	msg.Data = raw
	if err := w.signer.Sign(msg); err != nil {
		return nil, err
	}
	return msg, nil
}

func (w *Writer) publish(ctx context.Context, m message) (*jetstream.PubAck, error) {
	msg, err := w.message(m)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	ack, err := w.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(bus.PageStream))
	if err != nil {
		return nil, fmt.Errorf("feed of %s: publish %s: %w", w.backupID, m.Kind, err)
	}
	return ack, nil
}

// Errors of a follower whose publisher did not finish the attempt. The
// backup is applied when a later attempt comes.
var (
	ErrSuperseded = errors.New("the publisher started this backup over")
	ErrSilent     = errors.New("the publisher went silent")
	ErrAborted    = errors.New("the publisher gave this backup up")
)

// Reader is the consumer's end of a feed: the Pages of a backup in flight.
type Reader struct {
	backupID, attempt string
	silence           time.Duration
	msgs              jetstream.MessagesContext
	in                chan jetstream.Msg
	done              chan struct{}
	started           bool
	pages             []string
	end               *End
	trust             *sign.Trust
	refused           error // the last message refused for its signature
}

// Follow follows the attempt of backupID whose feed starts at seq. It gives
// up after silence without a word from the publisher. Messages that trust
// does not accept are skipped, as if never sent: nobody else can stop,
// supersede or add to the feed.
func Follow(ctx context.Context, js jetstream.JetStream, img ferry.ImageSpec, backupID, attempt string, seq uint64, silence time.Duration, trust *sign.Trust) (*Reader, error) {
	cons, err := js.OrderedConsumer(ctx, bus.PageStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{bus.Subject(bus.PageSubject, img.AtSnap(""))},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    seq,
	})
	if err != nil {
		return nil, fmt.Errorf("follow the feed of %s: %w", backupID, err)
	}
	msgs, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("follow the feed of %s: %w", backupID, err)
	}
	r := &Reader{backupID: backupID, attempt: attempt, silence: silence, msgs: msgs, in: make(chan jetstream.Msg, 64), done: make(chan struct{}), trust: trust}
	go r.pump()
	return r, nil
}

// pump turns the blocking iterator into a channel NextPage can time out on.
func (r *Reader) pump() {
	defer close(r.in)
	for {
		msg, err := r.msgs.Next()
		if err != nil {
			return
		}
		select {
		case r.in <- msg:
		case <-r.done:
			return
		}
	}
}

// NextPage returns the next page, io.EOF after the last (once the end
// message has confirmed the count), or why the feed will not finish.
func (r *Reader) NextPage(ctx context.Context) (string, error) {
	if r.end != nil {
		return "", io.EOF
	}
	timer := time.NewTimer(r.silence)
	defer timer.Stop()
	for {
		var msg jetstream.Msg
		var ok bool
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-timer.C:
			if r.refused != nil {
				return "", fmt.Errorf("feed of %s: %w: no word for %s that this site could authenticate (last refused: %v)", r.backupID, ErrSilent, r.silence, r.refused)
			}
			return "", fmt.Errorf("feed of %s: %w: no word for %s (it is applied when the publisher sends it again)", r.backupID, ErrSilent, r.silence)
		case msg, ok = <-r.in:
			if !ok {
				return "", fmt.Errorf("feed of %s: the subscription ended", r.backupID)
			}
		}
		if err := r.trust.Verify(msg.Subject(), msg.Headers(), msg.Data()); err != nil {
			r.refused = err
			continue
		}
		m, err := decode(msg.Data())
		if err != nil {
			return "", fmt.Errorf("feed of %s: message %s: %w", r.backupID, msg.Subject(), err)
		}
		if m.BackupID != r.backupID || m.Attempt != r.attempt {
			if r.started && m.Kind == kindStart {
				return "", fmt.Errorf("feed of %s: %w (attempt %s follows %s)", r.backupID, ErrSuperseded, m.Attempt, r.attempt)
			}
			continue // another backup's or attempt's message
		}
		timer.Reset(r.silence)
		switch m.Kind {
		case kindStart:
			r.started = true
		case kindAlive:
		case kindPage:
			if m.Index != len(r.pages) {
				return "", fmt.Errorf("feed of %s: page %d arrived where page %d was due: the feed is damaged", r.backupID, m.Index, len(r.pages))
			}
			r.pages = append(r.pages, m.Page)
			return m.Page, nil
		case kindEnd:
			if m.End == nil || m.End.Pages != len(r.pages) {
				return "", fmt.Errorf("feed of %s: the end message does not match the %d pages received: the feed is damaged", r.backupID, len(r.pages))
			}
			r.end = m.End
			return "", io.EOF
		case kindAbort:
			return "", fmt.Errorf("feed of %s: %w: %s", r.backupID, ErrAborted, m.Error)
		default:
			return "", fmt.Errorf("feed of %s: unknown message kind %q (is this consumer older than the publisher?)", r.backupID, m.Kind)
		}
	}
}

// decode parses a feed message and checks what NextPage relies on: a page
// has a page number, an end carries its counts. (The chunk store refuses a
// page address that is not a chunk's.) Kinds it does not know pass, for
// NextPage to report.
func decode(raw []byte) (message, error) {
	var m message
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, ferry.Invalid("does not parse: %v", err)
	}
	switch m.Kind {
	case kindPage:
		if m.Index < 0 || m.Page == "" {
			return m, ferry.Invalid("a page message without its page number or address")
		}
	case kindEnd:
		if m.End == nil || m.End.Pages < 0 || m.End.Extents < 0 {
			return m, ferry.Invalid("an end message without its counts")
		}
	}
	return m, nil
}

// Pages returns the pages received so far, in order.
func (r *Reader) Pages() []string { return r.pages }

// End returns the end message, once NextPage has returned io.EOF.
func (r *Reader) End() *End { return r.end }

// Close stops following.
func (r *Reader) Close() {
	close(r.done)
	r.msgs.Stop()
	for range r.in {
	}
}
