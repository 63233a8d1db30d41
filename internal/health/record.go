// Package health keeps what each Ferry daemon says of itself, in the health
// bucket of its own site's domain (bus.HealthBucket): a heartbeat, what it
// cannot reach and since when, and the backups it works on. From those
// records, the image states and the consumer lock, Read builds the report
// that `ferry status` prints.
//
// A record is written once per beat (Options.Interval), never per chunk or
// extent: progress is what the daemon counted by the last beat.
package health

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// Record is one daemon's word on itself.
type Record struct {
	Role      string    `json:"role"` // "publisher" or "consumer"
	Host      string    `json:"host"`
	PID       int       `json:"pid"`
	Started   time.Time `json:"started"`
	Heartbeat time.Time `json:"heartbeat"`
	// IntervalSeconds is the time between beats: a record a few beats
	// old is of a daemon that went silent.
	IntervalSeconds float64 `json:"interval_seconds"`
	// Stopped is set by a daemon that stopped on purpose.
	Stopped *time.Time `json:"stopped,omitempty"`
	// Unreachable is what the daemon cannot reach now; LastOutage the
	// last outage that ended (of its own NATS server, say, which it could
	// not write here while it lasted).
	Unreachable *Outage `json:"unreachable,omitempty"`
	LastOutage  *Outage `json:"last_outage,omitempty"`
	// Work lists the backups the daemon applies or will try again.
	Work []Work `json:"work,omitempty"`
}

// Outage is something a daemon could not reach.
type Outage struct {
	What  string     `json:"what"`
	Since time.Time  `json:"since"`
	Until *time.Time `json:"until,omitempty"`
	Error string     `json:"error,omitempty"`
}

// Phase of a backup a consumer works on.
type Phase string

const (
	PhaseApplying Phase = "applying" // an attempt is writing the backup image
	PhaseRetrying Phase = "retrying" // the last attempt failed; another follows
	PhaseWaiting  Phase = "waiting"  // its base snapshot has not arrived yet
)

// Work is one backup a consumer works on.
type Work struct {
	Image       string     `json:"image"` // source POOL/IMAGE
	BackupID    string     `json:"backup_id"`
	Snapshot    string     `json:"snapshot"`
	Phase       Phase      `json:"phase"`
	Attempt     int        `json:"attempt"`
	MaxAttempts int        `json:"max_attempts"`
	Started     time.Time  `json:"started"` // of the attempt
	BytesDone   uint64     `json:"bytes_applied"`
	LastError   string     `json:"last_error,omitempty"`
	NextTry     *time.Time `json:"next_try,omitempty"`
}

// Silent tells whether r's daemon missed its beats at now (it died, hangs,
// or cannot reach its NATS server) without saying it stopped.
func (r *Record) Silent(now time.Time) bool {
	every := time.Duration(r.IntervalSeconds * float64(time.Second))
	if every <= 0 {
		every = DefaultInterval
	}
	return r.Stopped == nil && now.Sub(r.Heartbeat) > 3*every
}

// DefaultInterval between two beats.
const DefaultInterval = 10 * time.Second

// Options configure a daemon's beats.
type Options struct {
	Role     string
	Interval time.Duration // DefaultInterval when 0
	// Other, if set, is the other site's JetStream, and OtherName what to
	// call it ("the backup site"): each beat asks it for its account, and
	// a beat it does not answer starts an outage.
	Other     jetstream.JetStream
	OtherName string
	// Own names this daemon's NATS server in an outage of it.
	Own string
	// Work, if set, lists the backups the daemon works on; called from
	// the beat's goroutine.
	Work func() []Work
	Log  *slog.Logger
}

// Beat writes the daemon's record into the health bucket of js (its own
// domain) every interval until ctx ends, then once more as stopped. It
// logs once when an outage starts and once when it ends.
func Beat(ctx context.Context, js jetstream.JetStream, o Options) {
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	host, _ := os.Hostname()
	b := &beater{o: o, js: js, key: Key(o.Role, host), rec: Record{Role: o.Role, Host: host, PID: os.Getpid(),
		Started: time.Now().UTC(), IntervalSeconds: o.Interval.Seconds()}}
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	for {
		b.beat(ctx)
		select {
		case <-ctx.Done():
			now := time.Now().UTC()
			b.rec.Stopped, b.rec.Work = &now, nil
			_ = b.putWithin(context.Background(), 2*time.Second)
			return
		case <-t.C:
		}
	}
}

type beater struct {
	o   Options
	js  jetstream.JetStream
	kv  jetstream.KeyValue
	key string
	rec Record
	own *Outage // of this daemon's NATS server, ongoing
}

func (b *beater) beat(ctx context.Context) {
	timeout := min(b.o.Interval, 5*time.Second)
	if b.o.Work != nil {
		b.rec.Work = b.o.Work()
	}
	b.rec.Heartbeat = time.Now().UTC()
	err := b.putWithin(ctx, timeout)
	if ctx.Err() != nil {
		return
	}
	// An outage of the daemon's own server is on record from the first
	// beat after it, as LastOutage: while it lasts, nothing can be written.
	if b.own = b.track(b.own, b.o.Own, err); err != nil || b.o.Other == nil {
		return // the other site is not asked: its silence would be this one's
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	_, err = b.o.Other.AccountInfo(pctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	was := b.rec.Unreachable
	if b.rec.Unreachable = b.track(was, b.o.OtherName, err); (was == nil) != (b.rec.Unreachable == nil) {
		_ = b.putWithin(ctx, timeout) // a change is on record at once
	}
}

func (b *beater) putWithin(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return b.put(ctx)
}

// track carries an outage of what on: err starts one (or continues it),
// nil ends it, and each is logged once. The ended one becomes LastOutage.
func (b *beater) track(out *Outage, what string, err error) *Outage {
	now := time.Now().UTC()
	switch {
	case err != nil && out == nil:
		b.o.Log.Warn(what+" is unreachable", "since", now.Format(time.RFC3339), "error", err)
		return &Outage{What: what, Since: now, Error: err.Error()}
	case err != nil:
		out.Error = err.Error()
		return out
	case out != nil:
		b.o.Log.Info(what+" is reachable again", "unreachable_since", out.Since.Format(time.RFC3339),
			"for", now.Sub(out.Since).Round(time.Second).String())
		out.Until = &now
		b.rec.LastOutage = out
	}
	return nil
}

// put writes the record, setting up the bucket first if need be.
func (b *beater) put(ctx context.Context) error {
	if b.kv == nil {
		kv, err := bus.SetupHealth(ctx, b.js)
		if err != nil {
			return err
		}
		b.kv = kv
	}
	raw, err := json.Marshal(b.rec)
	if err != nil {
		return err
	}
	if _, err := b.kv.Put(ctx, b.key, raw); err != nil {
		return fmt.Errorf("write health record %s: %w", b.key, err)
	}
	return nil
}

// Key is the record's key: one per role and host, so that a daemon
// restarted takes the place of the one before it.
func Key(role, host string) string { return keyPart(role) + "." + keyPart(host) }

// keyPart keeps what a key may hold of s; a host name's dots become '_'.
func keyPart(s string) string {
	b := []byte(s)
	for i, c := range b {
		keep := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
		if !keep {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}
