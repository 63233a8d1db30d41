package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/state"
	"github.com/nats-io/nats.go/jetstream"
)

// Report is what `ferry status` shows. It is built for output, its JSON
// keys are snake_case for scripts; the stored records are not changed by it.
type Report struct {
	Time    time.Time `json:"time"`
	Healthy bool      `json:"healthy"`
	// RPOSeconds is the recovery point objective checked (0: none).
	RPOSeconds int64 `json:"rpo_seconds"`
	// Problems say, one sentence each, what makes the report unhealthy.
	Problems []string `json:"problems"`
	Images   []Image  `json:"images"`
	// ActiveConsumer names the consumer holding the site's lock, "" when
	// none does or, without BackupSiteRead, when that is not known.
	ActiveConsumer string   `json:"active_consumer"`
	BackupSiteRead bool     `json:"backup_site_read"`
	Daemons        []Daemon `json:"daemons"`
	// Unreachable lists what this report could not read, and what the
	// daemons cannot reach now.
	Unreachable []Outage `json:"unreachable"`
}

// Image is one image's line of the report.
type Image struct {
	Image       string `json:"image"` // source POOL/IMAGE
	BackupImage string `json:"backup_image,omitempty"`
	// Status: ok, running, waiting (for its base), retrying (its last
	// attempt failed; the consumer tries again) or failed (given up).
	Status        string     `json:"status"`
	LastSnapshot  string     `json:"last_snapshot,omitempty"`
	LastSuccess   *time.Time `json:"last_success,omitempty"`
	AgeSeconds    *int64     `json:"age_seconds,omitempty"` // of the last success
	PastRPO       bool       `json:"past_rpo"`
	Consistency   string     `json:"consistency,omitempty"`
	LastAttempt   *time.Time `json:"last_attempt,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	Action        string     `json:"action,omitempty"` // what to do
	RestorePoints int        `json:"restore_points"`   // snapshots of the backup image
	Snapshots     []string   `json:"snapshots"`
	Work          *Work      `json:"work,omitempty"` // the consumer's attempt, when it works on it
}

// Failing tells whether the image's last attempt failed.
func (i *Image) Failing() bool { return i.Status == "failed" || i.Status == "retrying" }

// Daemon is one daemon's record, and what the report makes of it.
type Daemon struct {
	Record
	// State: running, stopped (on purpose) or silent (missed its beats).
	State string `json:"state"`
}

// ReadOptions say what Read reports.
type ReadOptions struct {
	// RPO: an image whose last confirmed backup is older is unhealthy;
	// 0 checks nothing.
	RPO time.Duration
	// Image, if set, restricts the report to this source image; Read
	// fails if the backup site knows nothing of it.
	Image *ferry.ImageSpec
	Now   time.Time // time.Now() when zero
}

// readTimeout bounds each read of a site, so that a site that does not
// answer is reported as unreachable instead of holding the report.
const readTimeout = 5 * time.Second

// Read builds the report from the image states, the consumer lock and the
// daemons' records of both sites. A site that does not answer is part of
// the report; other errors (a bucket missing) fail it.
func Read(ctx context.Context, conn *bus.Conn, o ReadOptions) (*Report, error) {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	r := &Report{Time: o.Now.UTC(), RPOSeconds: int64(o.RPO.Seconds()), Problems: []string{}, Images: []Image{}, Daemons: []Daemon{}, Unreachable: []Outage{}}
	states, err := readStates(ctx, conn.Backup)
	if err != nil {
		if !bus.Unreachable(err) {
			return nil, err
		}
		r.unreached("the backup site", err, o.Now)
	} else {
		r.BackupSiteRead = true
		r.readLock(ctx, conn.Backup)
	}
	records := map[string]Record{}
	for _, site := range []struct {
		name string
		js   jetstream.JetStream
	}{{"the backup site", conn.Backup}, {"the source site", conn.Source}} {
		if err := readRecords(ctx, site.js, records); err != nil && bus.Unreachable(err) {
			r.unreached(site.name, err, o.Now)
		}
	}
	work := r.addDaemons(records, o.Now)
	r.addImages(states, work, o)
	if o.Image != nil && len(r.Images) == 0 && len(r.Unreachable) == 0 {
		return nil, fmt.Errorf("the backup site knows nothing of %s: no backup of it arrived yet (is it in a pool the publisher exports? ferry status lists the images it knows)", o.Image)
	}
	r.Healthy = len(r.Problems) == 0
	return r, nil
}

func readStates(ctx context.Context, js jetstream.JetStream) ([]*ferry.ImageState, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	book, err := state.Open(ctx, js)
	if err != nil {
		return nil, err
	}
	return book.All(ctx)
}

func (r *Report) readLock(ctx context.Context, js jetstream.JetStream) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	active, err := bus.LockHolder(ctx, js, bus.ConsumerLock)
	switch {
	case err != nil:
		r.problem("the active consumer is unknown: %v", err)
	case active == "":
		r.problem("no consumer is active at the backup site: is `ferry consumer run` running there?")
	}
	r.ActiveConsumer = active
}

// readRecords adds the records of js's health bucket to into. A bucket
// that does not exist yet holds none.
func readRecords(ctx context.Context, js jetstream.JetStream, into map[string]Record) error {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	kv, err := js.KeyValue(ctx, bus.HealthBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return err
	}
	for k := range keys.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			continue // dropped meanwhile
		}
		var rec Record
		if json.Unmarshal(e.Value(), &rec) == nil && rec.Role != "" {
			into[k] = rec // on one server, both sites' buckets are one
		}
	}
	return nil
}

func (r *Report) unreached(site string, err error, now time.Time) {
	what := site + " (from here)"
	for _, u := range r.Unreachable {
		if u.What == what {
			return // said already
		}
	}
	r.Unreachable = append(r.Unreachable, Outage{What: what, Since: now.UTC(), Error: err.Error()})
	r.problem("%s does not answer from here: %v", site, err)
}

func (r *Report) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// addDaemons reports the records and returns the work of the live ones, by image.
func (r *Report) addDaemons(records map[string]Record, now time.Time) map[string]Work {
	keys := make([]string, 0, len(records))
	for k := range records {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	live := map[string]bool{}
	for _, k := range keys {
		if rec := records[k]; rec.Stopped == nil && !rec.Silent(now) {
			live[rec.Role] = true
		}
	}
	work := map[string]Work{}
	for _, k := range keys {
		rec := records[k]
		d := Daemon{Record: rec, State: "running"}
		switch {
		case rec.Stopped != nil:
			d.State = "stopped"
		case rec.Silent(now):
			d.State = "silent"
			if !live[rec.Role] { // not taken over by another
				r.problem("the %s on %s has been silent since %s (its last heartbeat)", rec.Role, rec.Host, rec.Heartbeat.Format(time.RFC3339))
			}
		default:
			if u := rec.Unreachable; u != nil {
				r.Unreachable = append(r.Unreachable, *u)
				r.problem("the %s on %s cannot reach %s since %s (for %s): %s", rec.Role, rec.Host, u.What,
					u.Since.Format(time.RFC3339), now.Sub(u.Since).Round(time.Second), u.Error)
			}
			for _, w := range rec.Work {
				work[w.Image] = w
			}
		}
		r.Daemons = append(r.Daemons, d)
	}
	return work
}

func (r *Report) addImages(states []*ferry.ImageState, work map[string]Work, o ReadOptions) {
	byName := map[string]*ferry.ImageState{}
	for _, s := range states {
		byName[s.Image.String()] = s
	}
	for name := range work {
		if byName[name] == nil { // its first attempt, before any state
			if img, err := ferry.ParseImageSpec(name); err == nil {
				byName[name] = &ferry.ImageState{Image: img, Status: ferry.StatusRunning}
			}
		}
	}
	names := make([]string, 0, len(byName))
	for name := range byName {
		if o.Image == nil || name == o.Image.AtSnap("").String() {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		var w *Work
		if x, ok := work[name]; ok {
			w = &x
		}
		img := newImage(byName[name], w, o)
		if img.Failing() {
			r.problem("%s is failing: %s", img.Image, img.LastError)
		}
		if img.PastRPO {
			r.problem("%s has no backup newer than %s, past the RPO of %s", img.Image, img.LastSuccess.Format(time.RFC3339), o.RPO)
		}
		r.Images = append(r.Images, img)
	}
}

func newImage(s *ferry.ImageState, w *Work, o ReadOptions) Image {
	img := Image{Image: s.Image.String(), LastSnapshot: s.LastSnapshot, Consistency: string(s.Consistency), LastError: s.LastError,
		RestorePoints: len(s.Confirmed), Snapshots: s.Confirmed, Status: string(s.Status), Work: w}
	if img.Snapshots == nil {
		img.Snapshots = []string{}
	}
	if s.BackupImage.Image != "" {
		img.BackupImage = s.BackupImage.String()
	}
	if !s.LastAttempt.IsZero() {
		img.LastAttempt = &s.LastAttempt
	}
	if !s.LastSuccess.IsZero() {
		age := int64(o.Now.Sub(s.LastSuccess).Seconds())
		img.LastSuccess, img.AgeSeconds = &s.LastSuccess, &age
		img.PastRPO = o.RPO > 0 && o.Now.Sub(s.LastSuccess) > o.RPO
	}
	if w != nil {
		switch w.Phase {
		case PhaseApplying:
			img.Status = string(ferry.StatusRunning)
		case PhaseWaiting:
			img.Status = "waiting"
		case PhaseRetrying:
			img.Status = "retrying"
		}
		if w.LastError != "" {
			img.LastError = w.LastError
		}
	}
	if img.Status == "" {
		img.Status = string(ferry.StatusOK)
	}
	img.Action = action(&img, s.Image)
	return img
}

// action says what to do about img, "" when nothing.
func action(img *Image, source ferry.ImageSpec) string {
	w := img.Work
	switch {
	case img.Status == "retrying" && w.NextTry != nil:
		return fmt.Sprintf("the consumer tries again at %s (attempt %d failed, of at most %d); if the error persists, fix what it names before the last attempt, or the backup is given up",
			w.NextTry.Format(time.RFC3339), w.Attempt, w.MaxAttempts)
	case img.Status == "retrying":
		return "the consumer tries again; if the error persists, fix what it names"
	case img.Status == "waiting":
		return "the backup waits for its base snapshot to be applied first; if it never comes, the backup is given up and the next one starts from the last confirmed snapshot"
	case img.Status == "failed":
		return fmt.Sprintf("fix what the error names (the consumer's log has the detail), then back the image up again: ferry backup %s", source)
	case img.PastRPO:
		return "no backup was confirmed within the RPO: check that the source site's agent takes snapshots and that its publisher runs (ferry status there)"
	}
	return ""
}
