package hooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferry-dr/ferry/internal/virt"
)

// A frozen marker is a small file written before a guest is frozen and
// removed once it is thawed. If the agent dies in between, the next agent
// start finds the marker and thaws the guest: a guest must never stay
// frozen because Ferry crashed.

type frozenMarker struct {
	Domain string    `json:"domain"`
	UUID   string    `json:"uuid"`
	Since  time.Time `json:"since"`
}

const markerSuffix = ".frozen"

func markerPath(dir, uuid string) string { return filepath.Join(dir, uuid+markerSuffix) }

// writeMarker records that dom is about to be frozen, durably.
func writeMarker(dir string, dom virt.Domain) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("frozen-marker dir: %w", err)
	}
	raw, _ := json.Marshal(frozenMarker{Domain: dom.Name, UUID: dom.UUID, Since: time.Now().UTC()})
	tmp := markerPath(dir, dom.UUID) + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write frozen marker: %w", err)
	}
	_, err = f.Write(raw)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, markerPath(dir, dom.UUID))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write frozen marker for %s: %w", dom.Name, err)
	}
	return nil
}

func removeMarker(dir, uuid string) error {
	if dir == "" {
		return nil
	}
	if err := os.Remove(markerPath(dir, uuid)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove frozen marker: %w", err)
	}
	return nil
}

// ThawMarked thaws every domain that a frozen marker in dir names, and
// removes the markers of domains that are thawed, shut off or gone. It
// returns the domains it thawed; a marker it could not resolve stays for
// the next try and is reported in the error.
func ThawMarked(hv Hypervisor, dir string, log *slog.Logger) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read frozen markers: %w", err)
	}
	var thawed []string
	var errs []error
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), markerSuffix) {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		var m frozenMarker
		if err == nil {
			err = json.Unmarshal(raw, &m)
		}
		if err != nil || m.UUID == "" {
			errs = append(errs, fmt.Errorf("frozen marker %s is unreadable (%v): check the guest named in it by hand and remove the file", e.Name(), err))
			continue
		}
		dom, err := hv.Domain(m.UUID)
		if errors.Is(err, virt.ErrNoDomain) {
			_ = removeMarker(dir, m.UUID)
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("domain %s left frozen by a previous run: %w", m.Domain, err))
			continue
		}
		if dom.State == virt.StateShutoff {
			_ = removeMarker(dir, m.UUID)
			continue
		}
		if err := hv.FSThaw(dom.UUID); err != nil {
			errs = append(errs, fmt.Errorf("thaw %s, left frozen by a previous run: %w (try: virsh domfsthaw %s)", dom.Name, err, dom.Name))
			continue
		}
		log.Warn("thawed a guest left frozen by a previous run", "domain", dom.Name, "frozen_since", m.Since)
		thawed = append(thawed, dom.Name)
		if err := removeMarker(dir, m.UUID); err != nil {
			errs = append(errs, err)
		}
	}
	return thawed, errors.Join(errs...)
}

func markerExists(dir, uuid string) bool {
	_, err := os.Stat(markerPath(dir, uuid))
	return err == nil
}
