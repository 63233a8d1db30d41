package consumer_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/consumer"
	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/health"
	"github.com/ferry-dr/ferry/internal/testutil"
)

// TestStatusShowsFailureAtFirstAttempt: with a consumer that fails every
// attempt (its pool map names a pool the backup cluster lacks), the status
// report lists the image as failing, with the error and the attempt, while
// the consumer's first attempt is its only one so far (the next is an hour
// away): nobody waits for the give-up to see it.
func TestStatusShowsFailureAtFirstAttempt(t *testing.T) {
	source, backup := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{}))
	img := cephtest.Image(t, source, "vm", 4*mib)
	const missing = "ferry-no-such-pool"
	p.consOpts.PoolMap = ferry.PoolMap{img.Pool: missing}
	p.consOpts.RetryDelay = time.Hour
	c, err := consumer.New(context.Background(), backup, p.consConn, p.consOpts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- c.Run(ctx) }()
	go func() {
		health.Beat(ctx, p.consConn.Backup, health.Options{Role: "consumer", Interval: 100 * time.Millisecond, Work: c.Work, Log: testLogger(t)})
		done <- nil
	}()
	defer func() {
		stop()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("consumer: %v", err)
			}
		}
	}()

	p.send(snapshot(t, img))
	var r *health.Report
	testutil.CheckFor(t, time.Minute, 100*time.Millisecond, func() (err error) {
		if r, err = health.Read(context.Background(), p.consConn, health.ReadOptions{Image: &img}); err != nil {
			return err
		}
		if len(r.Images) != 1 || !r.Images[0].Failing() || r.Images[0].Work == nil {
			return fmt.Errorf("the image is not reported failing with its attempt: %+v", r.Images)
		}
		return nil
	})
	got := r.Images[0]
	if got.Status != "retrying" || got.Work.Attempt != 1 || !strings.Contains(got.LastError, missing) {
		t.Fatalf("image reported %s at attempt %d with error %q; want retrying at attempt 1, naming pool %s", got.Status, got.Work.Attempt, got.LastError, missing)
	}
	if r.Healthy || !strings.Contains(strings.Join(r.Problems, "\n"), img.String()+" is failing") {
		t.Fatalf("report healthy %v with problems %q; want the failing image among them", r.Healthy, r.Problems)
	}
	// The state holds it too, for a status read without the consumer's record.
	st := waitState(t, p, img, func(s *ferry.ImageState) bool { return s.Status == ferry.StatusFailed })
	requireContains(t, st.LastError, missing)
}
