package recovery

import (
	"context"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/sign"
	"github.com/ferry-dr/ferry/internal/sign/signtest"
)

// TestForgedRestoreOutcomeIgnored: ferry restore believes only an outcome
// the source site signed; a forged "done", unsigned or signed by another
// key, is not its answer.
func TestForgedRestoreOutcomeIgnored(t *testing.T) {
	c := bustest.Conn(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sourceKey := signtest.Key(t)
	job := ferry.RestoreJob{ID: "restore-1", Target: ferry.ImageSpec{Pool: "rbd", Image: "prod"}}
	outcomes, stop, err := watchOutcome(ctx, c.Backup, job, signtest.Trust(t, sourceKey), func() {})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for _, key := range []*sign.Signer{nil, signtest.Key(t)} {
		if err := PublishRestoreOutcome(ctx, c.Backup, key, ferry.RestoreOutcome{JobID: job.ID, Target: job.Target, DataBytes: 666}); err != nil {
			t.Fatal(err)
		}
	}
	if err := PublishRestoreOutcome(ctx, c.Backup, sourceKey, ferry.RestoreOutcome{JobID: job.ID, Target: job.Target, Error: "refused: the real answer", Refused: true}); err != nil {
		t.Fatal(err)
	}
	if out := <-outcomes; out.Error != "refused: the real answer" {
		t.Fatalf("ferry restore took %+v for the source site's answer", out)
	}
}
