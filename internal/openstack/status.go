package openstack

import (
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ferry-dr/ferry/internal/ferry"
)

// The metadata keys Ferry owns. Nothing else is ever written or removed.
const (
	KeyStatus       = "ferry:status"        // ok, failed, running
	KeyLastSnapshot = "ferry:last_snapshot" // newest snapshot the backup site holds
	KeyLastSuccess  = "ferry:last_success"  // RFC 3339, UTC
	KeyConsistency  = "ferry:consistency"   // quiesced or crash
	KeySite         = "ferry:site"          // backup site name
	KeyError        = "ferry:error"         // last error, only while failed
	KeyPolicy       = "ferry:policy"        // set by the operator: opt in to a backup policy
)

var (
	cinderImage = regexp.MustCompile(`^volume-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$`)
	novaImage   = regexp.MustCompile(`^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})_disk$`)
)

// TargetOf tells which OpenStack resource carries the status of st's image:
// the volume the snapshot event named, else the one its RBD name shows
// (Cinder names images volume-<volume id>, Nova <server id>_disk). Images
// that are neither are not OpenStack disks: ok is false.
func TargetOf(st *ferry.ImageState) (t Target, ok bool) {
	if st.VolumeID != "" {
		return Target{Kind: Volume, ID: st.VolumeID}, true
	}
	if m := cinderImage.FindStringSubmatch(st.Image.Image); m != nil {
		return Target{Kind: Volume, ID: m[1]}, true
	}
	if m := novaImage.FindStringSubmatch(st.Image.Image); m != nil {
		return Target{Kind: Server, ID: m[1]}, true
	}
	return Target{}, false
}

// StatusMetadata is what Ferry writes for st, and whether the error key
// must go (a backup succeeded since it was written).
func StatusMetadata(st *ferry.ImageState, site string) (md map[string]string, clearError bool) {
	md = map[string]string{KeyStatus: string(st.Status)}
	if st.LastSnapshot != "" {
		md[KeyLastSnapshot] = Truncate(st.LastSnapshot, MaxValueLen)
	}
	if !st.LastSuccess.IsZero() {
		md[KeyLastSuccess] = st.LastSuccess.UTC().Format(time.RFC3339)
	}
	if st.Consistency != "" {
		md[KeyConsistency] = string(st.Consistency)
	}
	if site != "" {
		md[KeySite] = Truncate(site, MaxValueLen)
	}
	switch st.Status {
	case ferry.StatusFailed:
		msg := st.LastError
		if msg == "" {
			msg = "backup failed (no error recorded)"
		}
		// One line reads better in `openstack volume show`.
		md[KeyError] = Truncate(strings.Join(strings.Fields(msg), " "), MaxValueLen)
	case ferry.StatusOK:
		clearError = true
	}
	return md, clearError
}

const ellipsis = "…"

// Truncate returns s as valid UTF-8 of at most max bytes, cut on a rune
// boundary and ending in "…" when something was cut.
func Truncate(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return s
	}
	tail := ellipsis
	if max < 2*len(ellipsis) {
		tail = ""
	}
	cut := max - len(tail)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + tail
}
