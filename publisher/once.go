package publisher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/sign"
)

// OnceOptions configure BackupOnce.
type OnceOptions struct {
	Consistency   ferry.Consistency // "" = ferry.CrashConsistent
	Resync        bool
	ForceRollback bool
	NoWait        bool          // return once the backup is sent
	Timeout       time.Duration // for the backup site's answer; 0: no bound
	// NoConsumerGrace: the wait ends early once the backup site's lock has
	// said for this long that no consumer is active (default one minute:
	// a consumer restarted by systemd takes its lock back in seconds).
	NoConsumerGrace time.Duration
	UI              OnceUI // nil: nothing shown
}

// OnceUI shows what BackupOnce is doing; cmd/ferry draws it on a terminal.
type OnceUI interface {
	// Sending is told the snapshot taken. It returns where the send reports
	// its progress, and a func called once the send has ended.
	Sending(snap ferry.ImageSpec) (progress.Reporter, func())
	// Waiting is told when the wait for the backup site begins.
	Waiting(snap ferry.ImageSpec)
}

// Once is what BackupOnce did.
type Once struct {
	Sent   *Sent
	State  *ferry.ImageState // as the backup site recorded it; nil with NoWait
	Pruned []string          // source snapshots pruned after the confirmation
}

// BackupOnce backs up img (its Snap is ignored) now, as `ferry backup`: it
// takes a Ferry snapshot, sends it, waits until the backup site answers,
// and acts on the answer as the daemon does (onResult): pruning after a
// confirmation, removing the snapshot of a backup given up. A snapshot
// whose send failed is removed too: the backup site drops such a backup
// (its feed says so, or falls silent), so nothing there needs it.
func (p *Publisher) BackupOnce(ctx context.Context, img ferry.ImageSpec, o OnceOptions) (*Once, error) {
	now := time.Now().UTC()
	ev := ferry.SnapshotEvent{Image: img.AtSnap(ferry.NewSnapshotName(now)), Consistency: o.Consistency,
		Resync: o.Resync, ForceRollback: o.ForceRollback, Created: now}
	if ev.Consistency == "" {
		ev.Consistency = ferry.CrashConsistent
	}
	// What the backup asks of the backup site needs no snapshot: it goes
	// out before the snapshot is taken (see ahead).
	var a *ahead
	if p.exportable(ev.Image) == nil {
		if info, err := p.ceph.Info(img); err == nil {
			a = p.startAhead(ctx, img, ferry.BackupID(info.ID, img, ev.Image.Snap), !o.NoWait)
		}
	}
	defer a.drop()
	if err := p.ceph.CreateSnapshot(ev.Image); err != nil {
		return nil, err
	}
	var rep progress.Reporter
	sendDone := func() {}
	if o.UI != nil {
		rep, sendDone = o.UI.Sending(ev.Image)
	}
	m, err := p.backupRiding(ctx, ev, rep, a)
	sendDone()
	if err != nil {
		if rmErr := p.ceph.RemoveSnapshot(ev.Image); rmErr != nil {
			p.log.Warn("could not remove the unused snapshot", "snapshot", ev.Image.String(), "error", rmErr)
		}
		return nil, err
	}
	once := &Once{Sent: m}
	if o.NoWait {
		return once, nil
	}
	if o.UI != nil {
		o.UI.Waiting(ev.Image)
	}
	wctx := ctx
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	wctx, noConsumer := p.watchConsumer(wctx, o.NoConsumerGrace)
	r, err := p.waitResult(wctx, m, a.listener(m))
	if ctx.Err() == nil && noConsumer() {
		err = p.whySilent(ctx, m, 0)
	} else if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, sign.ErrUnauthenticated) && ctx.Err() == nil {
		// Say why the backup site is silent, as far as it can be told.
		err = p.whySilent(ctx, m, o.Timeout)
	}
	if errors.Is(err, sign.ErrUnauthenticated) {
		return nil, fmt.Errorf("the backup site's answer about %s was not accepted: %w", ev.Image, err)
	}
	if err != nil {
		return nil, err
	}
	// The verdict's state lookup crosses the WAN: beside the pruning.
	verdict := make(chan error, 1)
	go func() {
		var err error
		once.State, err = p.verdict(ctx, r)
		verdict <- err
	}()
	once.Pruned, err = p.onResult(ctx, r)
	vErr := <-verdict
	if r.Kind == ferry.ResultGivenUp && err != nil {
		p.log.Warn("could not remove the snapshot of the backup the backup site gave up", "snapshot", ev.Image.String(), "error", err)
	} else if err != nil {
		return nil, err
	}
	if vErr != nil {
		return nil, vErr
	}
	return once, nil
}
