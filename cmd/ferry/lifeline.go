package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/spf13/pflag"
)

// defaultShutdownTimeout is below systemd's TimeoutStopSec (60-90 s in the
// units), so a daemon says what it waited for before it is killed.
const defaultShutdownTimeout = 50 * time.Second

func registerShutdownTimeout(fs *pflag.FlagSet, d *time.Duration) {
	fs.DurationVar(d, "shutdown-timeout", defaultShutdownTimeout, "after SIGTERM, how long to wait for work in progress before exiting anyway, with status 1 (an import cut off is rolled back at the next start)")
}

// lifeline makes sure a daemon ends, and not silently:
//   - When its NATS connection is closed for good (the server closed it for
//     a protocol violation, say), its work's context ends and run returns
//     an error saying why: a daemon that exited with status 0 then was not
//     restarted by systemd's Restart=on-failure, and backups stopped
//     without an error line. An outage does not close the connection.
//   - When its context ends (SIGTERM), the shutdown deadline starts: past
//     it, the process exits with status 1 and a log line naming what it
//     still waited for (a handler inside librbd that does not answer, say).
//     An import cut off this way is on record; the next start rolls it back.
type lifeline struct {
	log     *slog.Logger
	conn    *bus.Conn
	timeout time.Duration
	exit    func(code int) // os.Exit when nil; tests set it

	mu       sync.Mutex
	closing  string      // what the daemon is closing now
	done     bool        // finish was called
	deadline *time.Timer // armed when the daemon's context ends
	disarm   func() bool // stops run's arming of the deadline
}

// run runs work until ctx ends or the connection closes for good.
func (l *lifeline) run(ctx context.Context, work func(context.Context) error) error {
	l.mu.Lock()
	l.disarm = context.AfterFunc(ctx, l.armDeadline)
	l.mu.Unlock()
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	go func() {
		select {
		case <-l.conn.Closed():
			cancel(bus.ErrConnClosed)
		case <-stopWatch:
		}
	}()
	err := work(wctx)
	if ctx.Err() == nil && l.conn.NC.IsClosed() {
		reason := l.conn.NC.LastError()
		l.log.Error("NATS connection closed for good; exiting with an error so that the service manager starts this daemon again", "reason", reason, "error", err)
		if err == nil {
			err = bus.ErrConnClosed
		}
		return fmt.Errorf("%w (NATS: %v)", err, reason)
	}
	return err
}

func (l *lifeline) armDeadline() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return
	}
	l.log.Info("stopping", "deadline", l.timeout)
	l.deadline = time.AfterFunc(l.timeout, func() {
		l.log.Error("shutdown deadline passed; exiting without waiting longer", "deadline", l.timeout, "waiting_for", l.waitingFor())
		exit := l.exit
		if exit == nil {
			exit = os.Exit
		}
		exit(1)
	})
}

// waitingFor says what keeps the daemon from ending.
func (l *lifeline) waitingFor() string {
	l.mu.Lock()
	closing := l.closing
	l.mu.Unlock()
	if closing != "" {
		return "closing " + closing
	}
	if busy := bus.InFlight(); len(busy) > 0 {
		return "handlers of " + strings.Join(busy, ", ")
	}
	return "the daemon's work to return"
}

// closingNow names what the daemon closes next, for the deadline's log.
func (l *lifeline) closingNow(name string) {
	l.mu.Lock()
	l.closing = name
	l.mu.Unlock()
}

// finish disarms the deadline: the daemon has closed everything.
func (l *lifeline) finish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done, l.closing = true, ""
	if l.disarm != nil {
		l.disarm()
	}
	if l.deadline != nil {
		l.deadline.Stop()
	}
}
