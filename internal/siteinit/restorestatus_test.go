package siteinit_test

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/recovery"
	"github.com/ferry-dr/ferry/internal/siteinit/siteinittest"
)

// TestRestoreStatusPermissions: a restore job's state is recorded by the
// identities that move it on, ferry restore (queued) and the source site's
// publisher (running, done), and read by ferry restore status with the
// read-only operator identity at either site, and with the restore
// identity; the operator cannot record one.
func TestRestoreStatusPermissions(t *testing.T) {
	sites := siteinittest.Start(t, false)
	setUpStreams(t, sites)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const id = "restore-20260101T000000Z-0123456789ab"
	st := ferry.RestoreStatus{JobID: id, State: ferry.RestoreQueued, Time: time.Now().UTC(),
		Snapshot: ferry.ImageSpec{Pool: "rbd", Image: "vm", Snap: "ferry-1"}, Target: ferry.ImageSpec{Pool: "rbd", Image: "vm-restored"}}
	restore := sites.Connect(t, bus.RoleRestore)
	if err := recovery.PublishRestoreStatus(ctx, restore.Backup, nil, st); err != nil {
		t.Fatalf("ferry restore records the job queued: %v", err)
	}
	st.State, st.Outcome = ferry.RestoreDone, &ferry.RestoreOutcome{JobID: id, Target: st.Target}
	if err := recovery.PublishRestoreStatus(ctx, sites.Connect(t, bus.RolePublisher).Backup, nil, st); err != nil {
		t.Fatalf("the publisher records it done: %v", err)
	}
	for _, site := range []string{"backup", "source"} {
		o := sites.ConnOptions(bus.RoleOperator)
		o.URL = sites.URL(site)
		op, err := bus.Connect(o)
		if err != nil {
			t.Fatal(err)
		}
		got, err := recovery.ReadRestoreStatus(ctx, op.Backup, id, nil)
		op.Close()
		if err != nil || got.State != ferry.RestoreDone {
			t.Errorf("the operator at the %s site reads %+v, %v; want done", site, got, err)
		}
	}
	if got, err := recovery.ReadRestoreStatus(ctx, restore.Backup, id, nil); err != nil || got.State != ferry.RestoreDone {
		t.Errorf("the restore identity reads %+v, %v; want done", got, err)
	}
	if v := sites.Violations(); len(v) > 0 {
		t.Fatalf("refused: %q", v)
	}

	op := sites.Connect(t, bus.RoleOperator)
	v := watchViolations(op)
	if err := op.NC.Publish(bus.RestoreStatusSubject+"."+id, []byte(`{"forged":true}`)); err != nil {
		t.Fatal(err)
	}
	v.wait(t, regexp.MustCompile(`Publish to "`+regexp.QuoteMeta(bus.RestoreStatusSubject+"."+id)+`"`), 1)
}
