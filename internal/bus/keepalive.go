package bus

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// KeepAlive sends in-progress acks for msg every interval until stop is
// called, so long work is not redelivered to someone else meanwhile.
func KeepAlive(msg jetstream.Msg, interval time.Duration) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	return func() { close(done) }
}
