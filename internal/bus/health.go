package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// HealthBucket (ferry-health): one record per daemon (package health) in
// its own site's domain, so that `ferry status` at either site can say what
// each daemon saw last: its heartbeat, what it could not reach and since
// when, the backups it works on. It lives in both domains, so it is not in
// the topology of SetupSource and SetupBackup: each daemon sets up its own
// site's with SetupHealth.
const HealthBucket = "ferry-health"

// HealthTTL drops the record of a daemon that has been silent this long: a
// daemon moved to another host is not reported silent for ever.
const HealthTTL = 24 * time.Hour

// SetupHealth creates or updates the health bucket of the domain js uses.
func SetupHealth(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      HealthBucket,
		Description: "Ferry: each daemon's heartbeat, outages and work in progress",
		TTL:         HealthTTL,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("set up bucket %s: %w", HealthBucket, err)
	}
	return kv, nil
}
