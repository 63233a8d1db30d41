package main

import (
	"time"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/rbddiff"
	"github.com/ferry-dr/ferry/internal/recovery"
	"github.com/ferry-dr/ferry/publisher"
)

// What the commands print with --json: views of their results with
// snake_case keys, images as POOL/IMAGE[@SNAP] strings and durations in
// seconds. They are built here, never by changing how a result is stored.

type backupReport struct {
	Image           string            `json:"image"`
	BackupID        string            `json:"backup_id"`
	Snapshot        string            `json:"snapshot"`
	Kind            string            `json:"kind"`                // full or incremental
	FromSnap        string            `json:"from_snap,omitempty"` // the base of an incremental
	Consistency     string            `json:"consistency"`
	Confirmed       bool              `json:"confirmed"` // false with --no-wait
	Stats           ferry.BackupStats `json:"stats"`
	DurationSeconds float64           `json:"duration_seconds"`
	BackupImage     string            `json:"backup_image,omitempty"`
	BackupSnapshots []string          `json:"backup_snapshots,omitempty"`
	Pruned          []string          `json:"pruned"`
}

func newBackupReport(once *publisher.Once, confirmed bool, took time.Duration) backupReport {
	m := once.Sent
	r := backupReport{Image: m.Image.AtSnap("").String(), BackupID: m.BackupID, Snapshot: m.Image.AtSnap(m.ToSnap).String(),
		Kind: "full", FromSnap: m.FromSnap, Consistency: string(m.Consistency), Confirmed: confirmed,
		Stats: m.Stats, DurationSeconds: took.Seconds(), Pruned: nonNil(once.Pruned)}
	if m.FromSnap != "" {
		r.Kind = "incremental"
	}
	if st := once.State; st != nil {
		r.BackupImage, r.BackupSnapshots = st.BackupImage.String(), st.Confirmed
	}
	return r
}

type rangeReport struct {
	Offset uint64 `json:"offset"`
	Length uint64 `json:"length"`
}

type verifyReport struct {
	Identical       bool          `json:"identical"`
	SourceSnapshot  string        `json:"source_snapshot"`
	BackupSnapshot  string        `json:"backup_snapshot"`
	SourceSize      uint64        `json:"source_size"`
	BackupSize      uint64        `json:"backup_size"`
	DataBytes       uint64        `json:"data_bytes"` // read and hashed, both sides together
	DurationSeconds float64       `json:"duration_seconds"`
	DifferentBytes  uint64        `json:"different_bytes"`
	Differences     []rangeReport `json:"differences"`
}

func newVerifyReport(r recovery.VerifyReport) verifyReport {
	v := verifyReport{Identical: r.Identical(), SourceSnapshot: r.SourceSnap.String(), BackupSnapshot: r.BackupSnap.String(),
		SourceSize: r.SourceSize, BackupSize: r.BackupSize, DataBytes: r.DataBytes, DurationSeconds: r.Duration.Seconds(),
		DifferentBytes: r.DifferentBytes(), Differences: []rangeReport{}}
	for _, d := range r.Differences {
		v.Differences = append(v.Differences, rangeReport(d))
	}
	return v
}

type scrubMismatchReport struct {
	Snapshot string `json:"snapshot"`
	Offset   uint64 `json:"offset"`
	Length   uint64 `json:"length"`
	Chunk    string `json:"chunk"` // the recorded hash
	Got      string `json:"got"`   // what the bytes read back hash to
}

type scrubReport struct {
	Image           string                `json:"image"`
	Clean           bool                  `json:"clean"`
	Checked         []string              `json:"checked"`
	Unrecorded      []string              `json:"unrecorded"`
	StaleRemoved    []string              `json:"stale_records_removed"`
	Chunks          int                   `json:"chunks"`
	DataBytes       uint64                `json:"data_bytes"`
	DurationSeconds float64               `json:"duration_seconds"`
	Mismatches      []scrubMismatchReport `json:"mismatches"`
}

func newScrubReport(r recovery.ScrubReport) scrubReport {
	s := scrubReport{Image: r.Image.String(), Clean: r.Clean(), Checked: nonNil(r.Checked), Unrecorded: nonNil(r.Unrecorded),
		StaleRemoved: nonNil(r.StaleRemoved), Chunks: r.Chunks, DataBytes: r.DataBytes, DurationSeconds: r.Duration.Seconds(),
		Mismatches: []scrubMismatchReport{}}
	for _, m := range r.Mismatches {
		s.Mismatches = append(s.Mismatches, scrubMismatchReport{Snapshot: m.Snapshot.String(), Offset: m.Offset, Length: m.Length, Chunk: m.Chunk, Got: m.Got})
	}
	return s
}

type retentionSnapshot struct {
	Name     string    `json:"name"`
	Time     time.Time `json:"time"`
	Decision string    `json:"decision"` // keep, remove, removed, failed
	Pinned   bool      `json:"pinned,omitempty"`
	Error    string    `json:"error,omitempty"`
}

type retentionReport struct {
	Image     string              `json:"image"`
	Policy    string              `json:"policy"`         // "": no policy applies, left alone
	Rule      string              `json:"rule,omitempty"` // the configuration's rule that gave it
	DryRun    bool                `json:"dry_run"`
	Error     string              `json:"error,omitempty"`
	Snapshots []retentionSnapshot `json:"snapshots"`
	NotFerrys []string            `json:"not_ferrys"` // left alone
}

func newRetentionReport(image ferry.ImageSpec, policy string, dryRun bool, res recovery.RetentionResult) retentionReport {
	r := retentionReport{Image: image.String(), Policy: policy, DryRun: dryRun, NotFerrys: nonNil(res.NotFerrys), Snapshots: []retentionSnapshot{}}
	for _, s := range res.Keep {
		r.Snapshots = append(r.Snapshots, retentionSnapshot{Name: s.Name, Time: s.Time.UTC(), Decision: "keep", Pinned: s.Pinned})
	}
	removed := map[string]bool{}
	for _, n := range res.Removed {
		removed[n] = true
	}
	failed := map[string]error{}
	for _, f := range res.Failed {
		failed[f.Name] = f.Err
	}
	for _, s := range res.Remove {
		e := retentionSnapshot{Name: s.Name, Time: s.Time.UTC(), Decision: "remove"}
		switch {
		case removed[s.Name]:
			e.Decision = "removed"
		case failed[s.Name] != nil:
			e.Decision, e.Error = "failed", failed[s.Name].Error()
		}
		r.Snapshots = append(r.Snapshots, e)
	}
	return r
}

// newRetentionReports is ferry retention apply's report: one entry per
// image, and the first image's failure as the command's error.
func newRetentionReports(runs []recovery.ImageRetention, dryRun bool) (reports []retentionReport, err error) {
	reports = []retentionReport{}
	for _, ir := range runs {
		policy := ""
		if ir.Rule != "" {
			policy = ir.Policy.String()
		}
		r := newRetentionReport(ir.Image, policy, dryRun, ir.Result)
		r.Rule = ir.Rule
		if ir.Err != nil {
			r.Error = ir.Err.Error()
			if err == nil {
				err = ir.Err
			}
		}
		reports = append(reports, r)
	}
	return reports, err
}

// diffReport is export-diff's and import-diff's: the diff's ends and size.
type diffReport struct {
	Image     string `json:"image"`
	FromSnap  string `json:"from_snap"` // "": from the image's creation
	ToSnap    string `json:"to_snap"`   // "": the image's head
	Size      uint64 `json:"size"`      // the image's size at ToSnap
	DataBytes uint64 `json:"data_bytes"`
	ZeroBytes uint64 `json:"zero_bytes"`
	Path      string `json:"path"`
}

func newDiffReport(image ferry.ImageSpec, path string, h rbddiff.Header, data, zero uint64) diffReport {
	return diffReport{Image: image.AtSnap("").String(), FromSnap: h.FromSnap, ToSnap: h.ToSnap, Size: h.Size, DataBytes: data, ZeroBytes: zero, Path: path}
}

type restoreReport struct {
	Snapshot        string  `json:"snapshot"`
	Target          string  `json:"target"` // with its snapshot, if the restore made one
	Site            string  `json:"site"`   // where the target is: backup, source (over JetStream) or the --source-* cluster
	Kind            string  `json:"kind"`   // full or incremental
	FromSnap        string  `json:"from_snap,omitempty"`
	Size            uint64  `json:"size"`
	DataBytes       uint64  `json:"data_bytes"`
	ZeroBytes       uint64  `json:"zero_bytes"`
	RolledBack      bool    `json:"rolled_back"`
	DurationSeconds float64 `json:"duration_seconds"`
	JobID           string  `json:"job_id,omitempty"` // a restore to the source site over JetStream
	Queued          bool    `json:"queued,omitempty"` // --no-wait: sent, not waited for
}

func restoreKind(fromSnap string) string {
	if fromSnap == "" {
		return "full"
	}
	return "incremental"
}

func newRestoreReport(res recovery.RestoreResult, site string) restoreReport {
	return restoreReport{Snapshot: res.Snapshot.String(), Target: res.Target.String(), Site: site, Kind: restoreKind(res.FromSnap),
		FromSnap: res.FromSnap, Size: res.Size, DataBytes: res.DataBytes, ZeroBytes: res.ZeroBytes, RolledBack: res.RolledBack,
		DurationSeconds: res.Duration.Seconds()}
}

// nonNil makes an empty list print as [], not null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
