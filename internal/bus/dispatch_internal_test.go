package bus

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// runAll returns only after every function has, even when one ends early
// with an error: a daemon's handlers may still be inside librbd then.
func TestRunAllWaitsForEveryone(t *testing.T) {
	boom := errors.New("consumer deleted")
	var slowDone atomic.Bool
	err := runAll(context.Background(),
		func(context.Context) error { return boom },
		func(ctx context.Context) error {
			<-ctx.Done() // ended by the first one
			time.Sleep(50 * time.Millisecond)
			slowDone.Store(true)
			return nil
		},
		func(ctx context.Context) error { <-ctx.Done(); return nil },
	)
	if !errors.Is(err, boom) {
		t.Errorf("runAll = %v, want %v", err, boom)
	}
	if !slowDone.Load() {
		t.Error("runAll returned before every function had")
	}
}

// Cancelled from outside, every function ends and there is no error.
func TestRunAllCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runAll(ctx,
			func(ctx context.Context) error { <-ctx.Done(); return nil },
			func(ctx context.Context) error { <-ctx.Done(); return nil },
		)
	}()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("runAll = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("runAll did not return after its context was cancelled")
	}
}
