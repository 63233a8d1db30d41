package bus

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// fakeMsg is a message that counts how it was handed back.
type fakeMsg struct {
	jetstream.Msg
	subject       string
	naks, delayed *atomic.Int64
}

func (m fakeMsg) Subject() string { return m.subject }
func (m fakeMsg) Data() []byte    { return []byte("x") }
func (m fakeMsg) Nak() error      { m.naks.Add(1); return nil }
func (m fakeMsg) NakWithDelay(time.Duration) error {
	m.delayed.Add(1)
	return nil
}

// One image's queue holds MaxQueuedPerImage messages behind the one being
// handled; the surplus is handed back with a delay, and stopping hands
// back what still waits.
func TestDispatcherPerImageBound(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{}, 1)
	d := newDispatcher(ctx, func(ctx context.Context, _ jetstream.Msg) {
		started <- struct{}{}
		<-ctx.Done()
	})
	var naks, delayed atomic.Int64
	msg := fakeMsg{subject: "ferry.manifest.pool.busy", naks: &naks, delayed: &delayed}
	d.add(msg)
	<-started // the first message is being handled, outside the queue
	const surplus = 10
	for i := 0; i < MaxQueuedPerImage+surplus; i++ {
		d.add(msg)
	}
	if got := delayed.Load(); got != surplus {
		t.Errorf("%d messages handed back with a delay, want %d", got, surplus)
	}
	cancel()
	d.stop()
	if got := naks.Load(); got != MaxQueuedPerImage {
		t.Errorf("%d queued messages handed back at the stop, want %d", got, MaxQueuedPerImage)
	}
	if len(d.images) != 0 || d.queued != 0 || d.running != 0 {
		t.Errorf("after the stop: %d images, %d queued, %d running; want none", len(d.images), d.queued, d.running)
	}
}
