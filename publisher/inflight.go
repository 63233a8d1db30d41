package publisher

import (
	"context"
	"fmt"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/nats-io/nats.go/jetstream"
)

// fullInFlight tells whether the backup of ev must wait for an earlier
// backup of its image that is still on its way: one whose manifest the
// backup site has not yet applied, while the backup site holds no
// snapshot of the image, so that ev would go out as a second full backup.
// The backup site refuses a full backup onto an image that holds
// snapshots (two chains), so after it applied the first, it would give the
// second up and ask for --resync. Snapshot events queued while the first
// backup of an image could not be sent (an outage) came to this. Waiting
// makes the second an incremental from the first.
func (p *Publisher) fullInFlight(ctx context.Context, ev ferry.SnapshotEvent) (bool, error) {
	if ev.Resync {
		return false, nil
	}
	img := ev.Image.AtSnap("")
	// The manifests first, then the state: the backup site records a
	// backup in the state before its manifest leaves the stream.
	subject := bus.Subject(bus.ManifestSubject, img)
	stream, err := p.bus.Backup.Stream(ctx, bus.ManifestStream)
	if err != nil {
		return false, fmt.Errorf("look for backups of %s on their way: %w", img, err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return false, fmt.Errorf("look for backups of %s on their way: %w", img, err)
	}
	if info.State.Subjects[subject] == 0 {
		return false, nil
	}
	st, err := p.book.Get(ctx, img)
	if err != nil {
		return false, err
	}
	return st == nil || len(st.Confirmed) == 0, nil
}
