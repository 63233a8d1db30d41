package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/sign"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// resultPrefix is the subject prefix of a backup result of kind k.
func resultPrefix(k ferry.ResultKind) (string, error) {
	switch k {
	case ferry.ResultConfirmed:
		return ConfirmedSubject, nil
	case ferry.ResultGivenUp, ferry.ResultChunksMissing:
		return FailedSubject, nil
	}
	return "", fmt.Errorf("unknown backup result kind %q (is this Ferry older than the backup site's?)", k)
}

// PublishResult tells the source site about a backup, on the subject of the
// result's kind, signed by signer (nil: unsigned).
func PublishResult(ctx context.Context, js jetstream.JetStream, signer *sign.Signer, r ferry.BackupResult) error {
	prefix, err := resultPrefix(r.Kind)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(Subject(prefix, r.Image.AtSnap("")))
	msg.Data = raw
	if err := signer.Sign(msg); err != nil {
		return err
	}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("publish %s for %s: %w", prefix, r.Image, err)
	}
	return nil
}

// DecodeResult reads the backup result of a FERRY_RESULTS message, once
// trust has authenticated it (wrapping sign.ErrUnauthenticated when not).
// Its kind must agree with its subject, its image be valid and the
// subject's (Refusal: ferry.ErrRefused), and it must be valid
// (BackupResult.Validate); the other refusals wrap ferry.ErrInvalid. A result of an older Ferry has no kind: its subject
// gives it (a failure that lists missing chunks asks for them).
func DecodeResult(subject string, h nats.Header, data []byte, trust *sign.Trust) (ferry.BackupResult, error) {
	var r ferry.BackupResult
	if err := trust.Verify(subject, h, data); err != nil {
		return r, fmt.Errorf("backup result refused: %w", err)
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, ferry.Invalid("backup result on %s does not parse: %v", subject, err)
	}
	prefix := subject // ferry.<kind>.<image key>
	if parts := strings.SplitN(subject, ".", 3); len(parts) == 3 {
		prefix = parts[0] + "." + parts[1]
	}
	if r.Kind == "" {
		switch {
		case prefix == ConfirmedSubject:
			r.Kind = ferry.ResultConfirmed
		case prefix == FailedSubject && len(r.MissingChunks) > 0:
			r.Kind = ferry.ResultChunksMissing
		case prefix == FailedSubject:
			r.Kind = ferry.ResultGivenUp
		}
	}
	want, err := resultPrefix(r.Kind)
	if err != nil {
		return r, ferry.Invalid("backup result on %s: %v", subject, err)
	}
	if want != prefix {
		return r, ferry.Invalid("backup result on %s says %q, which goes on %s.*: dropped as damaged", subject, r.Kind, want)
	}
	if err := Refusal(subject, r.Image, r.Image.Validate(), prefix); err != nil {
		return r, fmt.Errorf("backup result refused: %w", err)
	}
	return r, r.Validate()
}
