package openstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/nats-io/nats.go/jetstream"
)

// SyncOptions tune the syncer; zero values take the defaults.
type SyncOptions struct {
	Site        string        // written as ferry:site
	MinBackoff  time.Duration // first retry after a failed write (default 2 s)
	MaxBackoff  time.Duration // longest wait between retries (default 10 min)
	CallTimeout time.Duration // per API call (default 30 s)
	Log         *slog.Logger
}

// metadataWriter is what the syncer needs of OpenStack.
type metadataWriter interface {
	Merge(ctx context.Context, t Target, md map[string]string) error
	Delete(ctx context.Context, t Target, key string) error
}

// Syncer copies each image's backup status from the state bucket into the
// metadata of its volume or server. It only reads the bucket: whatever
// OpenStack does, backups go on and their status waits in JetStream until
// it can be written.
type Syncer struct {
	kv     jetstream.KeyValue
	md     metadataWriter
	o      SyncOptions
	images map[string]*pendingImage // by bucket key; owned by Run
}

// pendingImage is the syncer's view of one image.
type pendingImage struct {
	st        *ferry.ImageState
	target    Target
	md        map[string]string
	clearErr  bool
	written   string // fingerprint of what OpenStack holds, as far as we know
	attempts  int    // failed writes since the last success
	due       time.Time
	lastKind  ErrorKind // the failure already logged; logged again only when it changes
	ignoredAs string    // why the image is not an OpenStack disk (logged once)
}

// NewSyncer opens the state bucket of the backup site (js).
func NewSyncer(ctx context.Context, js jetstream.JetStream, md *Metadata, o SyncOptions) (*Syncer, error) {
	kv, err := js.KeyValue(ctx, bus.StateBucket)
	if err != nil {
		return nil, fmt.Errorf("open state bucket %s: %w (is the consumer set up at this site?)", bus.StateBucket, err)
	}
	return newSyncer(kv, md, o), nil
}

func newSyncer(kv jetstream.KeyValue, md metadataWriter, o SyncOptions) *Syncer {
	if o.MinBackoff <= 0 {
		o.MinBackoff = 2 * time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(10*time.Minute, o.MinBackoff)
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 30 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Syncer{kv: kv, md: md, o: o, images: map[string]*pendingImage{}}
}

// Run writes the current status of every image (catch-up), then each new
// one, until ctx ends. A watch that breaks (NATS restart) is set up again;
// the catch-up then repeats, which writes only what changed meanwhile.
func (s *Syncer) Run(ctx context.Context) error {
	for {
		err := s.watch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		s.o.Log.Warn("watch of the state bucket ended; watching again", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (s *Syncer) watch(ctx context.Context) error {
	w, err := s.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch state bucket: %w", err)
	}
	defer func() { _ = w.Stop() }()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	caughtUp := false
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watcher closed")
			}
			if e == nil {
				caughtUp = true
				s.o.Log.Info("state bucket read; writing statuses", "images", len(s.images))
			} else {
				s.update(e)
			}
		case <-timer.C:
		}
		if caughtUp {
			s.flush(ctx)
		}
		timer.Reset(s.nextDue())
	}
}

// update records a new state (or a deleted key) from the bucket.
func (s *Syncer) update(e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		delete(s.images, e.Key())
		return
	}
	var st ferry.ImageState
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		s.o.Log.Warn("state of an image does not parse; skipped", "key", e.Key(), "err", err)
		return
	}
	img := s.images[e.Key()]
	if img == nil {
		img = &pendingImage{due: time.Now()}
		s.images[e.Key()] = img
	}
	img.st = &st
	t, ok := TargetOf(&st)
	if !ok {
		if img.ignoredAs == "" {
			s.o.Log.Debug("not an OpenStack disk (no volume id, name is neither volume-<uuid> nor <uuid>_disk); ignored", "image", st.Image)
			img.ignoredAs = "not an OpenStack disk"
		}
		img.md = nil
		return
	}
	if t != img.target {
		img.written = ""
	}
	img.target = t
	img.md, img.clearErr = StatusMetadata(&st, s.o.Site)
	if img.attempts == 0 {
		img.due = time.Now()
	}
}

// flush writes every image that is due, in key order.
func (s *Syncer) flush(ctx context.Context) {
	now := time.Now()
	for _, key := range slices.Sorted(maps.Keys(s.images)) {
		img := s.images[key]
		if img.md == nil || img.written == fingerprint(img.md, img.clearErr) || img.due.After(now) {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		s.write(ctx, img)
	}
}

func (s *Syncer) write(ctx context.Context, img *pendingImage) {
	cctx, cancel := context.WithTimeout(ctx, s.o.CallTimeout)
	err := s.md.Merge(cctx, img.target, img.md)
	if err == nil && img.clearErr {
		err = s.md.Delete(cctx, img.target, KeyError)
	}
	cancel()
	log := s.o.Log.With("image", img.st.Image, "target", img.target, "status", img.st.Status)
	if err == nil {
		if img.lastKind != "" {
			log.Info("backup status written to OpenStack again", "after_failed_attempts", img.attempts)
		} else {
			log.Debug("backup status written to OpenStack")
		}
		img.written, img.attempts, img.lastKind = fingerprint(img.md, img.clearErr), 0, ""
		return
	}
	if ctx.Err() != nil {
		return // shutting down; the status stays in JetStream
	}
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		// Not the API's answer but this cloud's shape (no Nova endpoint):
		// retrying cannot help until the state changes.
		if img.lastKind != "unsupported" {
			log.Warn("cannot write backup status to OpenStack", "err", err)
		}
		img.lastKind, img.written = "unsupported", fingerprint(img.md, img.clearErr)
		return
	}
	img.attempts++
	delay := s.backoff(img.attempts)
	if apiErr.RetryAfter > delay {
		delay = apiErr.RetryAfter
	}
	img.due = time.Now().Add(delay)
	if apiErr.Kind != img.lastKind {
		// Once per kind: a volume deleted for good would otherwise log
		// every few minutes forever.
		log.Warn("cannot write backup status to OpenStack; it stays in JetStream and is retried with backoff",
			"kind", string(apiErr.Kind), "http_status", apiErr.Code, "retry_in", delay.Round(time.Millisecond), "err", err)
		img.lastKind = apiErr.Kind
	}
}

func (s *Syncer) backoff(attempt int) time.Duration {
	d := s.o.MinBackoff
	for i := 1; i < attempt && d < s.o.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, s.o.MaxBackoff)
}

// nextDue is how long until the earliest pending write.
func (s *Syncer) nextDue() time.Duration {
	next := time.Hour
	now := time.Now()
	for _, img := range s.images {
		if img.md == nil || img.written == fingerprint(img.md, img.clearErr) {
			continue
		}
		next = min(next, max(img.due.Sub(now), time.Millisecond))
	}
	return next
}

func fingerprint(md map[string]string, clearErr bool) string {
	b, _ := json.Marshal(md) // sorted keys
	return fmt.Sprintf("%s/%t", b, clearErr)
}
