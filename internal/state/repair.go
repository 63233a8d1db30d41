package state

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/nats-io/nats.go/jetstream"
)

// Entry is an image's state as the bucket holds it, for a repair: its
// revision, and whether it was deleted (then State is the last one it had
// before, nil when none is left in the bucket's history).
type Entry struct {
	Key      string
	State    *ferry.ImageState
	Revision uint64
	Deleted  bool
}

// WatchEntries calls fn with the latest entry of every image, then with
// every later deletion, until ctx ends. Writes are not passed on: they are
// the consumer's own.
func (b *Book) WatchEntries(ctx context.Context, fn func(Entry)) error {
	w, err := b.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch the state bucket: %w", err)
	}
	defer func() { _ = w.Stop() }()
	initial := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("the watch of the state bucket ended")
			}
			if e == nil { // every key's latest entry has been given
				initial = false
				continue
			}
			deleted := e.Operation() != jetstream.KeyValuePut
			if !deleted && !initial {
				continue
			}
			en := Entry{Key: e.Key(), Revision: e.Revision(), Deleted: deleted}
			if deleted {
				en.State = b.lastPut(ctx, e.Key())
			} else {
				en.State = parse(e.Value())
			}
			fn(en)
		}
	}
}

// lastPut is the newest state in key's history, nil when none is left.
func (b *Book) lastPut(ctx context.Context, key string) *ferry.ImageState {
	hist, err := b.kv.History(ctx, key)
	if err != nil {
		return nil
	}
	for i := len(hist) - 1; i >= 0; i-- {
		if hist[i].Operation() == jetstream.KeyValuePut {
			return parse(hist[i].Value())
		}
	}
	return nil
}

func parse(raw []byte) *ferry.ImageState {
	var s ferry.ImageState
	if json.Unmarshal(raw, &s) != nil {
		return nil
	}
	return &s
}

// Replace stores s only if its entry is still at revision rev (a deletion
// included): a repair never overwrites a state written meanwhile.
func (b *Book) Replace(ctx context.Context, s *ferry.ImageState, rev uint64) error {
	raw, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if _, err := b.kv.Update(ctx, bus.ImageKey(s.Image.AtSnap("")), raw, rev); err != nil {
		return fmt.Errorf("repair state of %s: %w", s.Image, err)
	}
	return nil
}
