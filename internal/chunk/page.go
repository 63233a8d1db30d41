package chunk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

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
	extents, err := DecodePage(raw)
	if err != nil {
		return nil, fmt.Errorf("extent page %s: %w", hash, err)
	}
	return extents, nil
}

// DecodePage parses the raw bytes of a page (whose hash Get has checked, so
// they are what a publisher stored). A page that does not parse, or holds
// no extents or more than PageSize, is ferry.ErrInvalid: no publisher
// writes one, and asking for it again cannot help. It decodes one extent
// at a time, so a page of millions of tiny extents is refused before they
// are all in memory. The extents themselves are checked in order across
// pages (ferry.ExtentCheck).
func DecodePage(raw []byte) ([]ferry.Extent, error) {
	bad := func(err error) error {
		return ferry.Invalid("does not parse as a list of extents: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil {
		return nil, bad(err)
	} else if tok != json.Delim('[') {
		return nil, bad(fmt.Errorf("starts with %v, not a list", tok))
	}
	var extents []ferry.Extent
	for dec.More() {
		if len(extents) == PageSize {
			return nil, ferry.Invalid("holds more than %d extents", PageSize)
		}
		var e ferry.Extent
		if err := dec.Decode(&e); err != nil {
			return nil, bad(err)
		}
		extents = append(extents, e)
	}
	if _, err := dec.Token(); err != nil { // the closing ']'
		return nil, bad(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad(fmt.Errorf("more after the list"))
	}
	if len(extents) == 0 {
		return nil, ferry.Invalid("holds no extents")
	}
	return extents, nil
}
