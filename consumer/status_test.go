package consumer_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/consumer"
	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/health"
	"github.com/ferry-dr/ferry/internal/testutil"
	"github.com/ferry-dr/ferry/publisher"
)

// TestStatusShowsFailureAtFirstAttempt: with a consumer that fails every
// attempt (its pool map names a pool the backup cluster lacks), the status
// report lists the image as failing, with the error and the attempt, while
// the consumer's first attempt is its only one so far (the next is an hour
// away): nobody waits for the give-up to see it.
func TestStatusShowsFailureAtFirstAttempt(t *testing.T) {
	source, _ := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{}))
	img := cephtest.Image(t, source, "vm", 4*mib)
	const missing = "ferry-no-such-pool"
	p.consOpts.PoolMap = ferry.PoolMap{img.Pool: missing}
	p.consOpts.RetryDelay = time.Hour
	runWithBeat(t, p)

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

// TestStatusShowsProgress: a backup being applied is reported running,
// with the bytes its import wrote by the consumer's last heartbeat; once
// confirmed, it is ok and no longer in work.
func TestStatusShowsProgress(t *testing.T) {
	source, _ := cephtest.Sites(t)
	p := newPipeline(t, startServer(t, bus.ServerOptions{}))
	runWithBeat(t, p)
	const size = 48 * mib // a page is 8 chunks (32 MiB): the first is applied while the second is held
	img := cephtest.Image(t, source, "vm", size)
	cephtest.Write(t, source, img, 0, randomBytes(rand.New(rand.NewPCG(61, 61)), size))
	hold := newHold(t, 40*mib)
	sent := make(chan *publisher.Sent, 1)
	go func() {
		m, err := p.pub.Backup(context.Background(), snapshot(t, img), hold)
		if err != nil {
			t.Error(err)
		}
		sent <- m
	}()
	<-hold.held
	testutil.CheckFor(t, time.Minute, 50*time.Millisecond, func() error {
		r, err := health.Read(context.Background(), p.consConn, health.ReadOptions{Image: &img})
		if err != nil {
			return err
		}
		if got := r.Images[0]; got.Status != "running" || got.Work == nil || got.Work.BytesDone == 0 {
			return fmt.Errorf("the image is not reported running with bytes applied: %+v, work %+v", got, got.Work)
		}
		return nil
	})
	hold.Release()
	if m := <-sent; m != nil {
		p.waitConfirmed(m)
	}
	testutil.CheckFor(t, time.Minute, 50*time.Millisecond, func() error {
		r, err := health.Read(context.Background(), p.consConn, health.ReadOptions{Image: &img})
		if err != nil {
			return err
		}
		if got := r.Images[0]; got.Status != "ok" || got.Work != nil || got.RestorePoints != 1 {
			return fmt.Errorf("the confirmed image is reported %s, work %+v, %d restore points", got.Status, got.Work, got.RestorePoints)
		}
		return nil
	})
}

// runWithBeat runs p's consumer and its health record (beating every 100
// ms) until the test ends.
func runWithBeat(t *testing.T, p *pipeline) {
	t.Helper()
	_, backup := cephtest.Sites(t)
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
	t.Cleanup(func() {
		stop()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("consumer: %v", err)
			}
		}
	})
}
