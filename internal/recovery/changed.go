package recovery

import (
	"context"
	"errors"
	"fmt"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/rbddiff"
)

// ChangedSince returns how many bytes of whole objects of image's head were
// written after snapshot since (0 = the head still equals it). It asks
// librbd's object map (a whole-object diff, milliseconds) and reads no data:
// the export is stopped as soon as the scan has announced its total.
func ChangedSince(ctx context.Context, c *ceph.Cluster, image ferry.ImageSpec, since string) (uint64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	scan := &scanTotal{cancel: cancel}
	_, err := c.Export(ctx, ceph.ExportOptions{Image: image.AtSnap(""), FromSnap: since, WholeObject: true}, discardSink{}, scan)
	if err != nil && !(scan.seen && errors.Is(err, context.Canceled)) {
		return 0, fmt.Errorf("compare the head of %s with snapshot %q: %w", image.AtSnap(""), since, err)
	}
	return scan.total, nil
}

// scanTotal is a progress.Reporter that keeps the total the export's scan
// announces and, when anything changed, stops the export before it reads.
type scanTotal struct {
	cancel func()
	total  uint64
	seen   bool
}

func (s *scanTotal) SetTotal(n uint64) {
	s.total, s.seen = n, true
	if n > 0 {
		s.cancel()
	}
}

func (s *scanTotal) Add(uint64) {}

type discardSink struct{}

func (discardSink) WriteHeader(rbddiff.Header) error { return nil }
func (discardSink) WriteData(uint64, []byte) error   { return nil }
func (discardSink) WriteZero(uint64, uint64) error   { return nil }
func (discardSink) Close() error                     { return nil }
