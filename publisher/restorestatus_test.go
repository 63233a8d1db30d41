package publisher_test

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/recovery"
	"github.com/ferry-dr/ferry/internal/testbed"
	"github.com/ferry-dr/ferry/internal/testutil"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestRestoreStatusFollowsJob: restores queued without waiting (as
// ferry restore --no-wait leaves them) read queued while the source site's
// publisher is down; once it runs, one reads done, and one into an image
// that exists reads failed with the source site's error.
func TestRestoreStatusFollowsJob(t *testing.T) {
	source, backup := cephtest.Sites(t)
	s := startSites(t)
	bak := cephtest.Image(t, backup, "bak", 12*mib)
	removeAtEnd(t, backup, bak)
	cephtest.Write(t, backup, bak, 0, randomBytes(rand.New(rand.NewPCG(43, 43)), 9*mib))
	snap(t, backup, bak, "s1")
	target := ferry.ImageSpec{Pool: testbed.Pool, Image: testbed.ImageName(t, "followed")}
	removeAtEnd(t, source, target)
	taken := cephtest.Image(t, source, "taken", mib)
	removeAtEnd(t, source, taken)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	queue := func(target ferry.ImageSpec) string {
		rr, err := recovery.SendRestore(ctx, recovery.SendOptions{Backup: backup, Bus: s.bakConn, Snapshot: bak.AtSnap("s1"), Target: target}, nil)
		if err != nil {
			t.Fatal(err)
		}
		rr.Close() // --no-wait: the command ends here
		if rr.StatusErr != nil {
			t.Fatal(rr.StatusErr)
		}
		return rr.Job.ID
	}
	// until reads the job's state until it is want.
	until := func(id string, want ferry.RestoreState) ferry.RestoreStatus {
		t.Helper()
		var st ferry.RestoreStatus
		testutil.CheckFor(t, time.Minute, 50*time.Millisecond, func() (err error) {
			st, err = recovery.ReadRestoreStatus(ctx, s.bakConn.Backup, id, nil)
			if err == nil && st.State != want {
				err = errors.New("state " + string(st.State))
			}
			return err
		})
		return st
	}

	good, bad := queue(target), queue(taken)
	st := until(good, ferry.RestoreQueued)
	if st.Snapshot != bak.AtSnap("s1") || st.Target != target || st.TotalBytes != 12*mib {
		t.Errorf("queued state %+v", st)
	}
	until(bad, ferry.RestoreQueued)
	s.startPublisherDaemon()
	st = until(good, ferry.RestoreDone)
	if st.Outcome == nil || st.Outcome.Error != "" || st.Outcome.DataBytes == 0 {
		t.Errorf("done state %+v, outcome %+v", st, st.Outcome)
	}
	cephtest.RequireSameContent(t, backup, bak.AtSnap("s1"), source, target)
	if got := stateHistory(ctx, t, s.bakConn.Backup, good); len(got) < 3 || got[0] != ferry.RestoreQueued || got[1] != ferry.RestoreRunning || got[len(got)-1] != ferry.RestoreDone {
		t.Errorf("states of the job: %v, want queued, running..., done", got)
	}
	st = until(bad, ferry.RestoreFailed)
	if st.Outcome == nil || !strings.Contains(st.Outcome.Error, recovery.ErrTargetExists.Error()) || !strings.Contains(st.Outcome.Error, taken.String()) {
		t.Errorf("failed state %+v, outcome %+v: want the error naming %s", st, st.Outcome, taken)
	}
	if _, err := recovery.ReadRestoreStatus(ctx, s.bakConn.Backup, "restore-none", nil); !errors.Is(err, recovery.ErrNoRestoreJob) {
		t.Errorf("unknown job: %v", err)
	}
}

// stateHistory lists every state recorded for restore job id, in order.
func stateHistory(ctx context.Context, t *testing.T, js jetstream.JetStream, id string) []ferry.RestoreState {
	t.Helper()
	cons, err := js.OrderedConsumer(ctx, bus.ResultStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{bus.RestoreStatusSubject + "." + id}})
	if err != nil {
		t.Fatal(err)
	}
	var states []ferry.RestoreState
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout) {
			return states
		}
		if err != nil {
			t.Fatal(err)
		}
		var st ferry.RestoreStatus
		if err := json.Unmarshal(msg.Data(), &st); err != nil {
			t.Fatal(err)
		}
		states = append(states, st.State)
	}
}
