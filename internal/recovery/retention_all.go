package recovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/retention"
	"github.com/ferry-dr/ferry/internal/state"
)

// RetentionAllOptions describe a retention run on every backup image the
// state bucket knows, each under the policy its rule gives it.
type RetentionAllOptions struct {
	Backup *ceph.Cluster
	Book   *state.Book
	Rules  retention.Rules
	Now    time.Time
	Remove bool // without it the run only reports
	// Pools are the backup pools the run may thin out (the consumer's
	// consumer.pools); empty: any. Images elsewhere are left alone.
	Pools []string
}

// ImageRetention is one image's part of a run.
type ImageRetention struct {
	Source ferry.ImageSpec // as the state bucket names it
	Image  ferry.ImageSpec // its backup image
	Policy retention.Policy
	Rule   string // which rule gave the policy; "" when none: the image is left alone
	// OutsidePools: the backup image is in none of the Pools; left alone.
	OutsidePools bool
	Result       RetentionResult
	Err          error
}

// ApplyRetentionAll applies to each image of the state bucket the policy
// its rule gives, with the same guards as ApplyRetention (the newest
// snapshot and the state's last backup stay). An image without a rule is
// left alone; one image's failure does not stop the others. The error is
// the bucket's: without it, nothing is known to be safe to remove.
func ApplyRetentionAll(ctx context.Context, o RetentionAllOptions) ([]ImageRetention, error) {
	states, err := o.Book.All(ctx)
	if err != nil {
		return nil, fmt.Errorf("retention: read the state bucket: %w (retention needs it to keep the base of each image's next backup)", err)
	}
	slices.SortFunc(states, func(a, b *ferry.ImageState) int { return strings.Compare(a.Image.String(), b.Image.String()) })
	var out []ImageRetention
	for _, st := range states {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		ir := ImageRetention{Source: st.Image, Image: st.BackupImage}
		if ir.Image.Image == "" {
			ir.Image = st.Image.AtSnap("")
		}
		if len(o.Pools) > 0 && !slices.Contains(o.Pools, ir.Image.Pool) {
			ir.OutsidePools = true
			out = append(out, ir)
			continue
		}
		var ok bool
		if ir.Policy, ir.Rule, ok = o.Rules.For(st.Image); ok {
			ir.Result, ir.Err = ApplyRetention(RetentionOptions{
				Backup: o.Backup, Image: ir.Image, Policy: ir.Policy, Base: st.LastSnapshot, Now: o.Now, Remove: o.Remove,
			})
			if errors.Is(ir.Err, ceph.ErrNotFound) {
				// A state of an image whose backup image is gone (removed
				// by hand, or never written): nothing to thin out.
				ir.Err = nil
			}
		}
		out = append(out, ir)
	}
	return out, nil
}

// RetentionLoopOptions configure the retention the consumer daemon applies.
type RetentionLoopOptions struct {
	Backup   *ceph.Cluster
	Book     *state.Book
	Rules    retention.Rules
	Interval time.Duration
	Pools    []string // as in RetentionAllOptions
	Log      *slog.Logger
	// Active, when set, tells whether this daemon is the site's active
	// consumer; a standby skips its runs, so that one daemon alone
	// removes snapshots, beside the imports it makes.
	Active func(context.Context) (bool, error)
	// Ran, when set, is told of each run (tests wait on it).
	Ran func([]ImageRetention, error)
}

// RetentionLoop applies the rules to every image at once and then every
// Interval, until ctx ends, and logs what each run removed and what it
// could not. A run that fails (NATS or Ceph down) is tried again at the
// next interval: retention only thins out, so a missed run costs space,
// never a backup.
func RetentionLoop(ctx context.Context, o RetentionLoopOptions) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	o.Log.Info("retention scheduled", "every", o.Interval)
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	for {
		if o.Active != nil {
			if active, err := o.Active(ctx); err != nil || !active {
				if err != nil {
					o.Log.Warn("retention run skipped: cannot tell whether this consumer is the active one", "error", err)
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					continue
				}
			}
		}
		res, err := ApplyRetentionAll(ctx, RetentionAllOptions{Backup: o.Backup, Book: o.Book, Rules: o.Rules, Now: time.Now(), Remove: true, Pools: o.Pools})
		if ctx.Err() != nil {
			return
		}
		logRetention(o.Log, res, err)
		if o.Ran != nil {
			o.Ran(res, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func logRetention(log *slog.Logger, res []ImageRetention, err error) {
	if err != nil {
		log.Warn("retention run failed; tried again at the next interval", "error", err)
		return
	}
	removed := 0
	for _, ir := range res {
		if len(ir.Result.Removed) > 0 {
			removed += len(ir.Result.Removed)
			log.Info("retention removed backup snapshots", "image", ir.Image.String(), "policy", ir.Policy.String(), "rule", ir.Rule,
				"removed", ir.Result.Removed, "kept", len(ir.Result.Keep))
		}
		if ir.Err != nil {
			log.Error("retention on an image failed; its other snapshots and the other images are unaffected", "image", ir.Image.String(),
				"rule", ir.Rule, "error", ir.Err)
		}
	}
	log.Debug("retention run done", "images", len(res), "removed", removed)
}
