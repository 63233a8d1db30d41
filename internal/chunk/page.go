package chunk

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/ferry-dr/ferry/internal/ferry"
)

// PageSize is the most extents one page holds. A manifest lists its extents
// in pages stored as chunks, so a manifest message stays small whatever the
// image size, and neither side holds a whole extent list in memory.
const PageSize = 16384

// PageChunks is the most data chunks one page names: a page closes at
// PageSize extents or PageChunks chunks, whichever comes first, so a
// backup in flight reaches the backup site in steps of a few chunks, and
// the import follows the sending closely.
const PageChunks = 8

// EncodePage returns the raw bytes of a page of extents and their address.
func (s *Store) EncodePage(extents []ferry.Extent) ([]byte, string, error) {
	raw, err := json.Marshal(extents)
	if err != nil {
		return nil, "", err
	}
	return raw, s.Address(raw), nil
}

// GetPage fetches and verifies a page of extents.
func (s *Store) GetPage(ctx context.Context, hash string) ([]ferry.Extent, error) {
	raw, err := s.Get(ctx, hash, nil)
	if err != nil {
		return nil, err
	}
	var extents []ferry.Extent
	if err := json.Unmarshal(raw, &extents); err != nil {
		return nil, &Error{Hash: hash, Err: fmt.Errorf("%w: extent page does not parse: %v", ErrCorrupt, err)}
	}
	return extents, nil
}
