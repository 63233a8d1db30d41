package bus

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// Dispatch pulls messages from cons and hands each to handle: messages of
// one image one at a time and in order, different images in parallel (every
// Ferry subject is ferry.<kind>.<image key>). It returns when ctx ends.
func Dispatch(ctx context.Context, cons jetstream.Consumer, handle func(context.Context, jetstream.Msg)) error {
	msgs, err := cons.Messages(jetstream.PullMaxMessages(64))
	if err != nil {
		return err
	}
	go func() { <-ctx.Done(); msgs.Stop() }()

	var wg sync.WaitGroup
	queues := map[string]chan jetstream.Msg{}
	defer func() {
		for _, q := range queues {
			close(q)
		}
		wg.Wait()
	}()
	for {
		msg, err := msgs.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return err
		}
		key := msg.Subject()
		if parts := strings.SplitN(key, ".", 3); len(parts) == 3 {
			key = parts[2]
		}
		q, ok := queues[key]
		if !ok {
			q = make(chan jetstream.Msg, 1024)
			queues[key] = q
			wg.Add(1)
			go func() {
				defer wg.Done()
				for m := range q {
					handle(ctx, m)
				}
			}()
		}
		q <- msg
	}
}

// Dispatcher is one consumer and its handler, for DispatchAll.
type Dispatcher struct {
	Consumer jetstream.Consumer
	Handle   func(context.Context, jetstream.Msg)
}

// DispatchAll runs a Dispatch for each of ds until ctx ends or one of them
// ends, which ends the others. It returns only once every handler has
// returned: a daemon's caller closes its Ceph connection next, and librbd
// aborts the process when its connection goes away under a running export
// or import. The error is the first one any Dispatch returned.
func DispatchAll(ctx context.Context, ds ...Dispatcher) error {
	fns := make([]func(context.Context) error, len(ds))
	for i, d := range ds {
		fns[i] = func(ctx context.Context) error { return Dispatch(ctx, d.Consumer, d.Handle) }
	}
	return runAll(ctx, fns...)
}

// runAll runs fns concurrently; the first to return cancels the others.
// It waits for all of them and returns the first error.
func runAll(ctx context.Context, fns ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(fns))
	for _, fn := range fns {
		go func() { errs <- fn(ctx) }()
	}
	var first error
	for range fns {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
		cancel()
	}
	return first
}
