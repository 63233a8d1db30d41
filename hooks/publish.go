package hooks

import (
	"context"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
)

// Events returns one snapshot event per disk of s, each naming the whole set.
func Events(s VMSnapshot) []ferry.SnapshotEvent {
	out := make([]ferry.SnapshotEvent, len(s.VM.Disks))
	for i, d := range s.VM.Disks {
		ev := ferry.SnapshotEvent{
			Image:          d.Image.AtSnap(s.Snapshot),
			Consistency:    s.Consistency,
			Created:        s.Created,
			VolumeID:       d.VolumeID,
			Domain:         s.VM.Name,
			Disks:          s.VM.Specs(),
			FreezeDuration: s.FreezeDuration,
		}
		if s.VM.Instance != nil {
			ev.InstanceID = s.VM.Instance.UUID
		}
		out[i] = ev
	}
	return out
}

// Publish queues the snapshot events of s for the publisher daemon.
func Publish(ctx context.Context, conn *bus.Conn, s VMSnapshot) error {
	for _, ev := range Events(s) {
		if err := bus.PublishSnapshotEvent(ctx, conn, ev); err != nil {
			return err
		}
	}
	return nil
}
