// Package state reads and writes what the backup site knows of each image
// (ferry.ImageState) in the JetStream key-value bucket. The consumer is its
// only writer; the publisher and `ferry status` read it from either site.
// Beside it, the scrub records (scrubrecord.go): what each backup snapshot
// was written from, stored by the consumer and read by `ferry scrub`.
package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/nats-io/nats.go/jetstream"
)

// Book is the state bucket.
type Book struct{ kv jetstream.KeyValue }

// Open opens the bucket that bus.SetupBackup creates.
func Open(ctx context.Context, js jetstream.JetStream) (*Book, error) {
	kv, err := js.KeyValue(ctx, bus.StateBucket)
	if err != nil {
		return nil, fmt.Errorf("open state bucket %s: %w", bus.StateBucket, err)
	}
	return &Book{kv: kv}, nil
}

// Get returns the state of img, or nil if the backup site never saw it.
func (b *Book) Get(ctx context.Context, img ferry.ImageSpec) (*ferry.ImageState, error) {
	e, err := b.kv.Get(ctx, bus.ImageKey(img.AtSnap("")))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state of %s: %w", img.AtSnap(""), err)
	}
	s, err := Decode(e.Value())
	if err != nil {
		return nil, fmt.Errorf("state of %s: %w", img.AtSnap(""), err)
	}
	return s, nil
}

// Decode parses a state entry. It must name the source image, and every
// snapshot it lists as confirmed: the publisher builds on those.
func Decode(raw []byte) (*ferry.ImageState, error) {
	var s ferry.ImageState
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, ferry.Invalid("state does not parse: %v", err)
	}
	if s.Image.Pool == "" || s.Image.Image == "" || s.Image.Snap != "" {
		return nil, ferry.Invalid("state of %q: the image is not POOL/IMAGE", s.Image)
	}
	for _, c := range s.Confirmed {
		if c == "" {
			return nil, ferry.Invalid("state of %s lists a confirmed snapshot without a name", s.Image)
		}
	}
	return &s, nil
}

// Put stores the state of s.Image.
func (b *Book) Put(ctx context.Context, s *ferry.ImageState) error {
	return b.write(ctx, s, b.kv.Put)
}

// Create stores s only if the bucket holds no state of s.Image: what it
// writes can never take the place of a state written meanwhile.
func (b *Book) Create(ctx context.Context, s *ferry.ImageState) error {
	return b.write(ctx, s, func(ctx context.Context, key string, raw []byte) (uint64, error) { return b.kv.Create(ctx, key, raw) })
}

func (b *Book) write(ctx context.Context, s *ferry.ImageState, op func(context.Context, string, []byte) (uint64, error)) error {
	raw, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if _, err := op(ctx, bus.ImageKey(s.Image), raw); err != nil {
		return fmt.Errorf("write state of %s: %w", s.Image, err)
	}
	return nil
}

// All returns the state of every image.
func (b *Book) All(ctx context.Context) ([]*ferry.ImageState, error) {
	keys, err := b.kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	var out []*ferry.ImageState
	for k := range keys.Keys() {
		e, err := b.kv.Get(ctx, k)
		if err != nil {
			continue // deleted meanwhile
		}
		if s, err := Decode(e.Value()); err == nil {
			out = append(out, s)
		}
	}
	return out, nil
}

// Watch calls fn with each new state of img until fn returns true or ctx ends.
func (b *Book) Watch(ctx context.Context, img ferry.ImageSpec, fn func(*ferry.ImageState) bool) error {
	w, err := b.kv.Watch(ctx, bus.ImageKey(img.AtSnap("")), jetstream.UpdatesOnly())
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("watch of %s ended", img.AtSnap(""))
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			if s, err := Decode(e.Value()); err == nil && fn(s) {
				return nil
			}
		}
	}
}
