package publisher

import (
	"context"
	"errors"
	"sync"

	"github.com/ferry-dr/ferry/internal/feed"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/nats-io/nats.go/jetstream"
)

// ahead holds the requests a backup makes of the backup site before it
// exports: the image's state and where the results stream stands, and for
// `ferry backup` a new attempt of the feed and the results listener too.
// None needs the snapshot, nor the answer of another, so they go out side
// by side, and `ferry backup` sends them before it takes its snapshot:
// across a WAN their round trips pass while the cluster commits the
// snapshot, instead of one after another after it. (The daemon's feed
// starts once the backup's base is chosen, as a new attempt of a backup
// in flight supersedes the one the backup site follows.)
type ahead struct {
	backupID string
	state    chan stateErr
	results  chan seqErr
	feed     chan feedErr   // nil: Ship starts the feed
	listen   chan listenErr // nil: waitResult opens its listener

	mu                     sync.Mutex
	feedTaken, listenTaken bool // by the shipment / by waitResult
	feedEnded, listenEnded bool // by dropFeed / drop
}

type stateErr struct {
	st  *ferry.ImageState
	err error
}

type seqErr struct {
	seq uint64
	err error
}

type feedErr struct {
	w   *feed.Writer
	err error
}

type listenErr struct {
	l   *resultListener
	err error
}

// startAhead sends the requests of the backup backupID of img; early adds
// the feed and the results listener.
func (p *Publisher) startAhead(ctx context.Context, img ferry.ImageSpec, backupID string, early bool) *ahead {
	img = img.AtSnap("")
	a := &ahead{backupID: backupID, state: make(chan stateErr, 1), results: make(chan seqErr, 1)}
	if early {
		a.feed, a.listen = make(chan feedErr, 1), make(chan listenErr, 1)
		go func() {
			w, err := feed.Start(ctx, p.bus.Backup, img, backupID, p.signer)
			a.feed <- feedErr{w, err}
		}()
	}
	go func() { st, err := p.book.Get(ctx, img); a.state <- stateErr{st, err} }()
	go func() {
		seq, err := p.nextResult(ctx)
		a.results <- seqErr{seq, err}
		if a.listen != nil {
			var l *resultListener
			if err == nil {
				l, err = p.listenResults(ctx, img, seq)
			}
			a.listen <- listenErr{l, err}
		}
	}()
	return a
}

// startFeed is the shipment's start of the feed: the one started ahead, if
// any, which the shipment then ends or aborts.
func (a *ahead) startFeed() func() (*feed.Writer, error) {
	if a.feed == nil {
		return nil
	}
	return func() (*feed.Writer, error) {
		a.mu.Lock()
		a.feedTaken = true
		a.mu.Unlock()
		r := <-a.feed
		return r.w, r.err
	}
}

// errNotSent is the abort of a feed whose backup failed before it shipped.
var errNotSent = errors.New("the backup failed before it was sent")

// drop ends what nobody took: the feed, which no manifest names, and the
// results listener. Safe on nil, and more than once.
func (a *ahead) drop() {
	a.dropFeed()
	if a == nil || a.listen == nil || !a.claim(&a.listenTaken, &a.listenEnded) {
		return
	}
	go func() {
		if r := <-a.listen; r.l != nil {
			r.l.stop()
		}
	}()
}

// dropFeed aborts the feed started ahead unless the shipment took it.
func (a *ahead) dropFeed() {
	if a == nil || a.feed == nil || !a.claim(&a.feedTaken, &a.feedEnded) {
		return
	}
	go func() {
		if r := <-a.feed; r.w != nil {
			r.w.Abort(errNotSent)
		}
	}()
}

// claim marks a request's answer as ended and says whether it is for the
// caller to end: nobody took it and nobody ended it before.
func (a *ahead) claim(taken, ended *bool) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	mine := !*taken && !*ended
	*ended = true
	return mine
}

// listener returns the results listener opened ahead, if there is one and
// it reads m's image from where m's try began; the caller stops it. Else
// nil: the caller opens its own.
func (a *ahead) listener(m *Sent) *resultListener {
	if a == nil || a.listen == nil {
		return nil
	}
	a.mu.Lock()
	if a.listenEnded {
		a.mu.Unlock()
		return nil
	}
	a.listenTaken = true
	a.mu.Unlock()
	r := <-a.listen
	if r.err != nil || r.l.from != m.ResultsFrom || r.l.img != m.Image.AtSnap("") {
		if r.l != nil {
			r.l.stop()
		}
		return nil
	}
	return r.l
}

// resultListener reads the backup site's answers about one image from a
// sequence of FERRY_RESULTS on.
type resultListener struct {
	img  ferry.ImageSpec
	from uint64
	msgs jetstream.MessagesContext
}

func (l *resultListener) stop() { l.msgs.Stop() }
