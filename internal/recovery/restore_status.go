package recovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/sign"
	"github.com/nats-io/nats.go/jetstream"
)

// A restore job's state travels on ferry.restoring.<job id> in the backup
// site's result stream: `ferry restore` records it queued before it
// queues the job, the source site's publisher running (every few seconds,
// with its progress), then done or failed. The stream's newest message of
// the subject is the job's state: one get by subject reads it, from
// either site, with no consumer and no write.

// PublishRestoreStatus records st, signed by signer (nil: unsigned).
func PublishRestoreStatus(ctx context.Context, js jetstream.JetStream, signer *sign.Signer, st ferry.RestoreStatus) error {
	if err := ferry.ValidateJobID(st.JobID); err != nil {
		return err
	}
	if err := publishResult(ctx, js, signer, bus.RestoreStatusSubject+"."+st.JobID, st); err != nil {
		return fmt.Errorf("record the state of restore job %s: %w (a backup site whose consumer predates restore status lacks its subject; restart ferry consumer run there)", st.JobID, err)
	}
	return nil
}

// ErrNoRestoreJob: no state of the job is on record.
var ErrNoRestoreJob = errors.New("no such restore job")

// ReadRestoreStatus returns the newest state of restore job id. A state
// after queued comes from the source site: with trust set, it must be
// signed by one of its keys (the queued one is ferry restore's own).
func ReadRestoreStatus(ctx context.Context, js jetstream.JetStream, id string, trust *sign.Trust) (ferry.RestoreStatus, error) {
	var st ferry.RestoreStatus
	if err := ferry.ValidateJobID(id); err != nil {
		return st, err
	}
	stream, err := js.Stream(ctx, bus.ResultStream)
	if err != nil {
		return st, fmt.Errorf("read the state of restore job %s: stream %s at the backup site: %w", id, bus.ResultStream, err)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, bus.RestoreStatusSubject+"."+id)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return st, fmt.Errorf("restore job %s: %w at the backup site (the id is the one ferry restore printed; a job's state is kept 7 days)", id, ErrNoRestoreJob)
	}
	if err != nil {
		return st, fmt.Errorf("read the state of restore job %s: %w", id, err)
	}
	if err := json.Unmarshal(msg.Data, &st); err != nil || st.JobID != id {
		return ferry.RestoreStatus{}, fmt.Errorf("restore job %s: its recorded state cannot be read (%v)", id, err)
	}
	if st.State != ferry.RestoreQueued {
		if err := trust.Verify(msg.Subject, msg.Header, msg.Data); err != nil {
			return ferry.RestoreStatus{}, fmt.Errorf("restore job %s: its state %q is not signed by a key of the source site this site trusts (consumer.trusted_keys): %w", id, st.State, err)
		}
	}
	return st, nil
}
