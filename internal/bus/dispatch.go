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
