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
	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/recovery"
	"github.com/ferry-dr/ferry/internal/testbed"
	"github.com/ferry-dr/ferry/internal/testutil"
	"github.com/ferry-dr/ferry/publisher"
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
	bak := backupSnapshot(t, 12*mib, 43)
	target := newTarget(t, "followed")
	taken := cephtest.Image(t, source, "taken", mib)
	removeAtEnd(t, source, taken)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	until := func(id string, want ferry.RestoreState) ferry.RestoreStatus { return s.restoreState(ctx, id, want) }
	good, bad := s.queueRestore(ctx, bak.AtSnap("s1"), target), s.queueRestore(ctx, bak.AtSnap("s1"), taken)
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

// TestRestoreHandedBack: a job that a restorer took and gave back before
// it began (as a daemon that shuts down does) is applied by the next one;
// a job that one began (its state running) and never answered is answered
// as interrupted, not applied again.
func TestRestoreHandedBack(t *testing.T) {
	source, backup := cephtest.Sites(t)
	s := startSites(t)
	bak := backupSnapshot(t, 4*mib, 47)
	unbegun, begun := newTarget(t, "unbegun"), newTarget(t, "begun")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	jobs, err := publisher.RestoreJobs(s.pub, ctx)
	if err != nil {
		t.Fatal(err)
	}
	// handBack takes jobs as a restorer does and gives them back, up to id.
	handBack := func(id string) {
		t.Helper()
		for {
			msg, err := jobs.Next(jetstream.FetchMaxWait(10 * time.Second))
			if err != nil {
				t.Fatal(err)
			}
			job, err := ferry.DecodeRestoreJob(msg.Data())
			if err != nil {
				t.Fatal(err)
			}
			if err := msg.Nak(); err != nil {
				t.Fatal(err)
			}
			if job.ID == id {
				return
			}
		}
	}
	first := s.queueRestore(ctx, bak.AtSnap("s1"), unbegun)
	handBack(first)
	second := s.queueRestore(ctx, bak.AtSnap("s1"), begun)
	if err := recovery.PublishRestoreStatus(ctx, s.bakConn.Backup, nil, ferry.RestoreStatus{JobID: second, State: ferry.RestoreRunning, Time: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	handBack(second)

	s.startPublisherDaemon()
	s.restoreState(ctx, first, ferry.RestoreDone)
	cephtest.RequireSameContent(t, backup, bak.AtSnap("s1"), source, unbegun)
	st := s.restoreState(ctx, second, ferry.RestoreFailed)
	if st.Outcome == nil || !strings.Contains(st.Outcome.Error, "stopped during an earlier attempt") {
		t.Errorf("a begun job delivered again: %+v, want it answered as interrupted", st.Outcome)
	}
	if _, err := source.Info(begun); !errors.Is(err, ceph.ErrNotFound) {
		t.Errorf("a begun job was applied again: %s: %v", begun, err)
	}
}

// backupSnapshot makes a backup image of size bytes at the backup site,
// three quarters of it random data from seed, with snapshot s1.
func backupSnapshot(t *testing.T, size uint64, seed uint64) ferry.ImageSpec {
	t.Helper()
	_, backup := cephtest.Sites(t)
	bak := cephtest.Image(t, backup, "bak", size)
	removeAtEnd(t, backup, bak)
	cephtest.Write(t, backup, bak, 0, randomBytes(rand.New(rand.NewPCG(seed, seed)), int(size/4*3)))
	snap(t, backup, bak, "s1")
	return bak
}

// newTarget names an image of the source site for a restore to create.
func newTarget(t *testing.T, prefix string) ferry.ImageSpec {
	source, _ := cephtest.Sites(t)
	target := ferry.ImageSpec{Pool: testbed.Pool, Image: testbed.ImageName(t, prefix)}
	removeAtEnd(t, source, target)
	return target
}

// queueRestore is ferry restore --to source:TARGET --no-wait: it returns
// once the job is queued and its pages stored.
func (s *sites) queueRestore(ctx context.Context, snapshot, target ferry.ImageSpec) string {
	s.t.Helper()
	_, backup := cephtest.Sites(s.t)
	rr, err := recovery.SendRestore(ctx, recovery.SendOptions{Backup: backup, Bus: s.bakConn, Snapshot: snapshot, Target: target}, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	rr.Close()
	if rr.StatusErr != nil {
		s.t.Fatal(rr.StatusErr)
	}
	return rr.Job.ID
}

// restoreState reads job id's state until it is want.
func (s *sites) restoreState(ctx context.Context, id string, want ferry.RestoreState) ferry.RestoreStatus {
	s.t.Helper()
	var st ferry.RestoreStatus
	testutil.CheckFor(s.t, time.Minute, 50*time.Millisecond, func() (err error) {
		st, err = recovery.ReadRestoreStatus(ctx, s.bakConn.Backup, id, nil)
		if err == nil && st.State != want {
			err = errors.New("state " + string(st.State))
		}
		return err
	})
	return st
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
