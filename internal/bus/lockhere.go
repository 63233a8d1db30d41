package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// HeldHere tells whether this process holds key in the lock bucket: the
// consumer that holds the site's lock exports the site's figures, and its
// standbys do not, so that nothing is counted twice.
func HeldHere(ctx context.Context, js jetstream.JetStream, key string) (bool, error) {
	kv, err := js.KeyValue(ctx, LockBucket)
	if err != nil {
		return false, fmt.Errorf("open lock bucket %s: %w", LockBucket, err)
	}
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read lock %s: %w", key, err)
	}
	var h lockHolder
	if json.Unmarshal(e.Value(), &h) != nil {
		return false, nil
	}
	me := thisProcess("")
	return h.Host == me.Host && h.PID == me.PID, nil
}
