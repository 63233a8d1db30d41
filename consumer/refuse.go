package consumer

import (
	"context"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/nats-io/nats.go/jetstream"
)

// refuse drops a manifest refused for good (bus.Refusal): it is never tried
// again. When its image is one Ferry takes, the image's state records the
// refusal, for ferry status; a name Ferry does not take gets no state
// entry, only the log line.
func (c *Consumer) refuse(ctx context.Context, msg jetstream.Msg, m *ferry.Manifest, err error) {
	c.opts.Log.Error("manifest refused; dropping it", "subject", msg.Subject(),
		"image", m.Image.AtSnap("").String(), "snapshot", m.ToSnap, "backup_id", m.BackupID, "error", err)
	if m.Image.AtSnap("").Validate() == nil {
		c.fail(ctx, m, err, false)
	}
	_ = msg.Term()
}
