package publisher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
)

// whySilent is the error of a backup the backup site did not answer within
// timeout, with the cause as the backup site's lock and state tell it: no
// active consumer, a consumer retrying with an error, or a consumer that
// has not reached the backup yet. Each lookup is bounded: the site may be
// unreachable, which is then the news.
// A zero timeout: the wait ended early, for want of a consumer.
func (p *Publisher) whySilent(ctx context.Context, m *Sent, timeout time.Duration) error {
	snap := m.Image.AtSnap(m.ToSnap)
	within := "within " + timeout.String()
	if timeout == 0 {
		within = "yet"
	}
	queued := "the backup stays queued and is applied when the consumer gets to it; `ferry status` at the backup site follows it"
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	holder, err := bus.LockHolder(lctx, p.bus.Backup, bus.ConsumerLock)
	if err != nil {
		return fmt.Errorf("the backup site did not confirm %s %s, and cannot be asked why: %w (is the link to it up?); %s", snap, within, err, queued)
	}
	if holder == "" {
		return fmt.Errorf("the backup site did not confirm %s %s: no consumer is active there (its lock is free); start `ferry consumer run` at the backup site: %s", snap, within, queued)
	}
	st, err := p.book.Get(lctx, m.Image)
	if err == nil && st != nil && st.Status == ferry.StatusFailed && st.LastAttempt.After(m.Created) {
		return fmt.Errorf("the backup site did not confirm %s %s: its consumer (%s) is retrying it after: %s; %s", snap, within, ferry.Printable(holder), ferry.Printable(st.LastError), queued)
	}
	return fmt.Errorf("the backup site did not confirm %s %s; its consumer (%s) has not applied it yet (busy with other backups, or a large one); %s", snap, within, ferry.Printable(holder), queued)
}

// watchConsumer returns ctx, ended early when the backup site's lock says
// for grace (default one minute) that no consumer is active, and a func
// telling whether that is why it ended. A lock that cannot be read (the
// site unreachable, the bucket not made yet) ends nothing: the backup may
// still be applied, and the wait's own bound rules.
func (p *Publisher) watchConsumer(ctx context.Context, grace time.Duration) (context.Context, func() bool) {
	if grace <= 0 {
		grace = time.Minute
	}
	wctx, cancel := context.WithCancelCause(ctx)
	go func() {
		poll := time.NewTicker(grace / 4)
		defer poll.Stop()
		var freeSince time.Time
		for {
			select {
			case <-wctx.Done():
				return
			case <-poll.C:
			}
			lctx, done := context.WithTimeout(wctx, 10*time.Second)
			holder, err := bus.LockHolder(lctx, p.bus.Backup, bus.ConsumerLock)
			done()
			switch {
			case err != nil || holder != "":
				freeSince = time.Time{}
			case freeSince.IsZero():
				freeSince = time.Now()
			case time.Since(freeSince) >= grace:
				cancel(errNoConsumer)
				return
			}
		}
	}()
	return wctx, func() bool { return errors.Is(context.Cause(wctx), errNoConsumer) }
}

var errNoConsumer = errors.New("no consumer is active at the backup site")
