package publisher

import (
	"context"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
)

// rideTries bounds the sends of one `ferry backup` while the backup site
// does not answer: about two and a half minutes of pauses (bus.Outage),
// enough for a restart of NATS; a longer outage fails the command, and
// says why.
const rideTries = 10

// backupRiding is Backup, sent again while NATS or the backup site does not
// answer (a server restarting under the send): a backup sent again sends
// only the chunks that did not arrive, and the backup site drops the cut-off
// attempt for the new one. The first send uses the requests a sent ahead
// (nil: none); the others send their own.
func (p *Publisher) backupRiding(ctx context.Context, ev ferry.SnapshotEvent, rep progress.Reporter, a *ahead) (*Sent, error) {
	out := bus.NewOutage(p.log, "the backup site")
	for try := 1; ; try++ {
		m, err := p.backupAhead(ctx, ev, rep, a)
		a = nil
		if err == nil || try == rideTries || ctx.Err() != nil || !bus.Unreachable(err) || p.bus.NC.IsClosed() {
			if err == nil {
				out.Over()
			}
			return m, err
		}
		if !out.Wait(ctx, err) {
			return nil, err
		}
	}
}
