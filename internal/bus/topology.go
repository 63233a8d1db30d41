package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Every subject, stream and bucket Ferry uses. docs/design.md explains the
// streams and buckets in a table that TestDesignTableMatchesTopology checks.
const (
	// Source domain.
	//
	// FERRY_SNAPSHOTS: "snapshot created" events from the hooks and `ferry
	// backup`. A work queue: each event is for one publisher, and gone once
	// that publisher acked it (after its manifest is stored at the backup site).
	SnapshotStream   = "FERRY_SNAPSHOTS"
	SnapshotSubject  = "ferry.snapshot" // .<pool>.<image>
	PublisherDurable = "publisher"

	// Backup domain.
	//
	// FERRY_CHUNKS: content-addressed, compressed chunks, one message per
	// subject ferry.chunk.<sha256>. What is here is not sent again (dedup
	// across images, VMs and retries); age and size limits bound it, and a
	// chunk that aged out before its import is asked for again.
	ChunkStream  = "FERRY_CHUNKS"
	ChunkSubject = "ferry.chunk" // .<sha256 hex>
	// FERRY_MANIFESTS: one message per backup, deduplicated by Nats-Msg-Id =
	// backup id within DuplicateWindow, and made idempotent beyond it by the
	// consumer (a to-snapshot that exists is confirmed, not re-imported).
	// A work queue: a manifest goes once it is applied.
	ManifestStream  = "FERRY_MANIFESTS"
	ManifestSubject = "ferry.manifest" // .<pool>.<image>
	ConsumerDurable = "consumer"
	// FERRY_PAGES: the extent pages of backups in flight (package feed), so
	// the consumer imports while the publisher still sends. Limits
	// retention: the consumer follows a feed again after a crash; it purges
	// an image's feed up to a backup it confirmed, and age bounds the rest.
	PageStream  = "FERRY_PAGES"
	PageSubject = "ferry.pages" // .<pool>.<image>
	// FERRY_RESULTS: confirmations and failures, for the publisher (pruning,
	// resending missing chunks) and for `ferry backup` waiting on its backup;
	// and the outcomes of restores into the source site, for `ferry restore`.
	ResultStream     = "FERRY_RESULTS"
	ConfirmedSubject = "ferry.confirmed" // .<pool>.<image>
	FailedSubject    = "ferry.failed"    // .<pool>.<image>
	RestoredSubject  = "ferry.restored"  // .<pool>.<image> of the target, done or failed
	// A restore job's state, from queued to done or failed, for `ferry
	// restore status`: the last message of its subject is its state now.
	RestoreStatusSubject = "ferry.restoring" // .<job id>
	PrunerDurable        = "pruner"
	// FERRY_RESTORES: restore jobs from the backup site into images of the
	// source site (failback over JetStream). It lives in the backup domain so
	// that `ferry restore` can queue a job while the source site is still
	// unreachable; the source site's publisher daemon takes it when it is
	// back. A work queue: a job is for one restorer, and gone once applied.
	RestoreStream   = "FERRY_RESTORES"
	RestoreSubject  = "ferry.restore" // .<pool>.<image> of the target
	RestorerDurable = "restorer"
	// ferry-state: per image, what the backup site holds (ImageState).
	StateBucket = "ferry-state"
	// ferry-scrub (object store): per backup snapshot, the chunk hashes and
	// extents it was written from, so `ferry scrub` can re-check the backup
	// image long after the chunks aged out. Object <image key>.<snapshot token>.
	ScrubBucket = "ferry-scrub"
	// ferry-locks: key "consumer" names the one `ferry consumer run` that
	// applies backups at this site; others wait as standbys (HoldLock). The
	// bucket's TTL drops the lock of a consumer that died without letting go.
	LockBucket   = "ferry-locks"
	ConsumerLock = "consumer"

	// Hypervisor hosts: plain NATS on the server the agent connects to, no
	// stream (a request or notice nobody listens to is fine).
	//
	// ferry.agent.<host>.backup: on-demand backup requests to the agent of
	// a host, answered by request-reply.
	AgentSubject = "ferry.agent" // .<host>.backup
	// ferry.hook.<host>.<op>: the libvirt hook's notices to the agent of
	// its host that libvirtd did op to a domain.
	HookSubject = "ferry.hook" // .<host>.<op>

	// DuplicateWindow is how long JetStream drops a republished manifest.
	DuplicateWindow = 24 * time.Hour
)

// Retention, overridable for tests and operators.
type Retention struct {
	ChunkMaxAge   time.Duration
	ChunkMaxBytes int64 // -1: unlimited
	EventMaxAge   time.Duration
	// LockTTL is how long a lock outlives its holder's last renewal
	// (0: DefaultLockTTL).
	LockTTL time.Duration
}

// DefaultLockTTL: a standby takes over this long after the active consumer
// died. Long against the holder's renewals (every eighth of it), so that
// only a consumer stalled for most of a minute can lose its lock to another
// while it still writes.
const DefaultLockTTL = time.Minute

// DefaultRetention keeps chunks a week, enough to dedup daily backups of
// many clones of one image, and events a week, enough to ride out an outage.
var DefaultRetention = Retention{ChunkMaxAge: 7 * 24 * time.Hour, ChunkMaxBytes: -1, EventMaxAge: 7 * 24 * time.Hour}

// MaxChunkSize bounds the configurable chunk size so a compressed chunk
// always fits in MaxPayload.
const MaxChunkSize = 4 << 20

// SetupSource creates or updates the source domain's streams.
func SetupSource(ctx context.Context, js jetstream.JetStream, r Retention) error {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        SnapshotStream,
		Description: "Ferry: snapshot-created events for the publisher",
		Subjects:    []string{SnapshotSubject + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		MaxAge:      r.EventMaxAge,
		Storage:     jetstream.FileStorage,
		Duplicates:  DuplicateWindow,
	})
	if err != nil {
		return fmt.Errorf("set up stream %s: %w", SnapshotStream, err)
	}
	return nil
}

// SetupBackup creates or updates the backup domain's streams and bucket.
func SetupBackup(ctx context.Context, js jetstream.JetStream, r Retention) error {
	streams := []jetstream.StreamConfig{{
		Name:              ChunkStream,
		Description:       "Ferry: compressed, content-addressed chunks of backups",
		Subjects:          []string{ChunkSubject + ".*"},
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: 1,
		MaxAge:            r.ChunkMaxAge,
		MaxBytes:          r.ChunkMaxBytes,
		MaxMsgSize:        MaxPayload,
		Discard:           jetstream.DiscardOld,
		// Direct gets return a chunk's raw bytes; the JSON API would
		// base64-encode every 4 MiB chunk on the way to the consumer.
		AllowDirect: true,
		Storage:     jetstream.FileStorage,
	}, {
		Name:        ManifestStream,
		Description: "Ferry: one manifest per backup, applied by the consumer",
		Subjects:    []string{ManifestSubject + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		MaxMsgSize:  MaxPayload,
		Storage:     jetstream.FileStorage,
		Duplicates:  DuplicateWindow,
	}, {
		Name:        PageStream,
		Description: "Ferry: extent pages of backups in flight",
		Subjects:    []string{PageSubject + ".>"},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      r.EventMaxAge,
		Storage:     jetstream.FileStorage,
	}, {
		Name:        ResultStream,
		Description: "Ferry: backup confirmations and failures, and restore outcomes",
		Subjects:    []string{ConfirmedSubject + ".>", FailedSubject + ".>", RestoredSubject + ".>", RestoreStatusSubject + ".>"},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      r.EventMaxAge,
		Storage:     jetstream.FileStorage,
	}, {
		Name:        RestoreStream,
		Description: "Ferry: restore jobs into images of the source site",
		Subjects:    []string{RestoreSubject + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		// A job older than its feed's pages is useless: they age out together.
		MaxAge:     r.EventMaxAge,
		Storage:    jetstream.FileStorage,
		Duplicates: DuplicateWindow,
	}}
	for _, cfg := range streams {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("set up stream %s: %w", cfg.Name, err)
		}
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      StateBucket,
		Description: "Ferry: what the backup site holds of each image",
		History:     5,
		Storage:     jetstream.FileStorage,
	}); err != nil {
		return fmt.Errorf("set up bucket %s: %w", StateBucket, err)
	}
	lockTTL := r.LockTTL
	if lockTTL == 0 {
		lockTTL = DefaultLockTTL
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      LockBucket,
		Description: "Ferry: which consumer is the active one",
		TTL:         lockTTL,
		Storage:     jetstream.FileStorage,
	}); err != nil {
		return fmt.Errorf("set up bucket %s: %w", LockBucket, err)
	}
	if _, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:      ScrubBucket,
		Description: "Ferry: scrub records of backup snapshots",
		Storage:     jetstream.FileStorage,
	}); err != nil {
		return fmt.Errorf("set up object store %s: %w", ScrubBucket, err)
	}
	return nil
}

// Token makes a name safe as one subject token: letters, digits, '-' and
// '_' stay, every other byte becomes ~XX (its hex value). Hook and agent
// subjects and the snapshot part of scrub record names use it; '~' is not
// allowed in key-value keys, so image keys escape with keyToken.
func Token(s string) string { return escape(s, '~') }

// keyToken makes a pool or image name safe as one subject token and as one
// part of a key-value key, which allow only [-/_=.a-zA-Z0-9] and split on
// '.': letters, digits, '-' and '_' stay, every other byte becomes =XX.
// '=' itself is escaped too, so two names never share a token, and a name
// of letters, digits, '-' and '_' keeps the key it always had.
func keyToken(s string) string { return escape(s, '=') }

// escape keeps letters, digits, '-' and '_' and writes every other byte,
// mark included, as mark and two hex digits.
func escape(s string, mark byte) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%c%02X", mark, c)
		}
	}
	return b.String()
}

// ImageKey is an image's key in the state bucket and its subject suffix.
func ImageKey(img ferry.ImageSpec) string { return keyToken(img.Pool) + "." + keyToken(img.Image) }

// Subject joins a subject prefix and an image's key.
func Subject(prefix string, img ferry.ImageSpec) string { return prefix + "." + ImageKey(img) }

// PublishSnapshotEvent queues a snapshot for the publisher daemon. The event
// id makes a repeated publish of the same snapshot harmless.
func PublishSnapshotEvent(ctx context.Context, conn *Conn, ev ferry.SnapshotEvent) error {
	raw, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(Subject(SnapshotSubject, ev.Image))
	msg.Data = raw
	if _, err := conn.Source.PublishMsg(ctx, msg, jetstream.WithMsgID(ev.Image.String())); err != nil {
		return fmt.Errorf("publish snapshot event for %s: %w", ev.Image, err)
	}
	return nil
}

// Refusal returns why a message received on subject, whose body acts on
// img, is refused for good (it wraps ferry.ErrRefused), or nil. valid is the
// check of the names the body carries (nil: they are fine). The subject must
// be img's under one of prefixes: streams, filters, purges and the order of
// one image's messages all go by the subject, so a body that acts on
// another image than its subject names is never applied.
func Refusal(subject string, img ferry.ImageSpec, valid error, prefixes ...string) error {
	if valid != nil {
		return ferry.Refuse(valid)
	}
	for _, prefix := range prefixes {
		if subject == Subject(prefix, img.AtSnap("")) {
			return nil
		}
	}
	return ferry.Refuse(fmt.Errorf("the subject %s does not name the image %s of the message (want %s)",
		strconv.Quote(subject), strconv.Quote(img.AtSnap("").String()), Subject(prefixes[0], img.AtSnap(""))))
}
