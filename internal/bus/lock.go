package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrLockLost: a lock was taken away from its holder (it expired while the
// holder could not renew it, or somebody removed it).
var ErrLockLost = errors.New("lock lost")

// ErrLockNotRenewed: a lock was given up because NATS could not be reached
// to renew it; nobody else need have taken it.
var ErrLockNotRenewed = errors.New("NATS unreachable")

// lockHolder is a lock's value: who holds it, for the standbys' logs.
type lockHolder struct {
	Holder string    `json:"holder"`
	Since  time.Time `json:"since"`
	// Host and PID name the holder's process, so that a holder restarted
	// on the same host takes over from its dead predecessor at once.
	Host string `json:"host,omitempty"`
	PID  int    `json:"pid,omitempty"`
	// Token names this holding of the lock, so that a process that gave
	// it up (NATS unreachable) takes it back at once, not after its TTL.
	Token string `json:"token,omitempty"`
}

// HoldLock takes key in the lock bucket (which SetupBackup creates) for
// holder, waiting while another holds it (standby is told who, once per
// holder), and keeps it by renewing it every eighth of the bucket's TTL; a
// holder that could not renew it for half the TTL (a NATS outage) gives it
// up before a standby could take it.
// The returned context ends when ctx does or when the lock is lost; then
// context.Cause wraps ErrLockLost. TakenOver on it names the gone holder
// whose lock was taken without waiting for its TTL. release lets the lock
// go at once, so a standby need not wait for it to expire.
func HoldLock(ctx context.Context, js jetstream.JetStream, key, holder string, standby func(holder string)) (held context.Context, release func(), err error) {
	kv, err := js.KeyValue(ctx, LockBucket)
	if err != nil {
		return nil, nil, fmt.Errorf("open lock bucket %s: %w", LockBucket, err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("lock bucket %s: %w", LockBucket, err)
	}
	ttl := st.TTL()
	every := ttl / 8
	if every <= 0 {
		return nil, nil, fmt.Errorf("lock bucket %s has no TTL: a dead holder's lock would never expire", LockBucket)
	}
	var value []byte
	var rev uint64
	var told, from string
	me := thisProcess(holder)
	for {
		me.Since = time.Now().UTC()
		if value, err = json.Marshal(me); err != nil {
			return nil, nil, err
		}
		rev, err = kv.Create(ctx, key, value)
		if err == nil {
			break
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, nil, fmt.Errorf("take lock %s: %w", key, err)
		}
		if rev, from, err = takeOverDead(ctx, kv, key, value); err == nil {
			break
		}
		if other := currentHolder(ctx, kv, key); other != "" && other != told {
			standby(other)
			told = other
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(every):
		}
	}

	held, lose := context.WithCancelCause(context.WithValue(ctx, takenOverKey{}, from))
	holding.Store(me.Token, true)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		defer holding.Delete(me.Token)
		t := time.NewTicker(every)
		defer t.Stop()
		renewed := time.Now()
		for {
			select {
			case <-held.Done():
				return
			case <-t.C:
				next, err := kv.Update(held, key, value, rev)
				switch {
				case err == nil:
					rev, renewed = next, time.Now()
				case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
					if r, ok := ownRevision(held, kv, key, me.Token); ok {
						rev = r
						continue
					}
					lose(fmt.Errorf("%w: lock %s expired or was taken over", ErrLockLost, key))
					return
				case time.Since(renewed) > ttl/2:
					// A standby may take it over soon: stop before that.
					lose(fmt.Errorf("%w: %w: could not renew lock %s for %s: %v", ErrLockLost, ErrLockNotRenewed, key, time.Since(renewed).Round(time.Second), err))
					return
				}
			}
		}
	}()
	release = func() {
		lose(context.Canceled) // a lost lock keeps its cause
		<-stopped
		// Only while the lock is still ours (the revision says so); if this
		// fails, it expires.
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = kv.Delete(dctx, key, jetstream.LastRevision(rev))
		cancel()
	}
	return held, release, nil
}

// ownRevision returns key's revision if it still holds this holding's
// token: a renewal that the client gave up on was applied late (a stopped
// NATS server resumed and worked off its requests), which moved the
// revision on, but nobody else took the lock.
func ownRevision(ctx context.Context, kv jetstream.KeyValue, key, token string) (uint64, bool) {
	e, err := kv.Get(ctx, key)
	if err != nil {
		return 0, false
	}
	var h lockHolder
	if json.Unmarshal(e.Value(), &h) != nil || h.Token != token {
		return 0, false
	}
	return e.Revision(), true
}

// LockHolder names who holds key in the lock bucket, "" when nobody does.
func LockHolder(ctx context.Context, js jetstream.JetStream, key string) (string, error) {
	kv, err := js.KeyValue(ctx, LockBucket)
	if err != nil {
		return "", fmt.Errorf("open lock bucket %s: %w", LockBucket, err)
	}
	return currentHolder(ctx, kv, key), nil
}

func currentHolder(ctx context.Context, kv jetstream.KeyValue, key string) string {
	e, err := kv.Get(ctx, key)
	if err != nil {
		return ""
	}
	var h lockHolder
	if json.Unmarshal(e.Value(), &h) != nil {
		return "(unreadable lock value)"
	}
	return fmt.Sprintf("%s (since %s)", h.Holder, h.Since.Format(time.RFC3339))
}
