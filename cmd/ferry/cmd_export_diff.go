package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/rbddiff"
	"github.com/spf13/cobra"
)

func newExportDiffCommand() *cobra.Command {
	var (
		cf          cephFlags
		fromSnap    string
		wholeObject bool
		format      int
		noProgress  bool
		asJSON      bool
	)
	cmd := &cobra.Command{
		Use:   "export-diff [--from-snap SNAP] [--whole-object] [--export-format 1|2] POOL/IMAGE[@SNAP] PATH|-",
		Short: "Write the changes of an image as an rbd diff stream (like rbd export-diff)",
		Long: `Write the changes of POOL/IMAGE between --from-snap (default: image creation) and
@SNAP (default: the image head) to PATH, or to standard output for "-". The stream is
the format of rbd export-diff and can be applied with rbd import-diff or ferry import-diff.
An existing PATH is never overwritten, and PATH appears only once the diff is complete.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := ferry.ParseImageSpec(args[0])
			if err != nil {
				return err
			}
			if asJSON && args[1] == "-" {
				return withExitCode(exitUsage, fmt.Errorf("--json prints on standard output, which carries the diff with PATH \"-\": give a file"))
			}
			if format != 1 && format != 2 {
				return withExitCode(exitUsage, fmt.Errorf("--export-format %d: want 1 or 2", format))
			}
			if fromSnap != "" {
				if err := ferry.ValidateSnapName(fromSnap); err != nil {
					return fmt.Errorf("--from-snap: %w", err)
				}
			}
			cluster, err := cf.connect()
			if err != nil {
				return err
			}
			defer cluster.Close()
			if err := resolveLatest(cluster, &spec); err != nil {
				return err
			}

			out, commit, abort, err := openDiffOutput(args[1])
			if err != nil {
				return err
			}
			defer abort()
			meter := progress.NewMeter("Exporting "+spec.String(), progress.StderrIfTerminal(noProgress), 200*time.Millisecond)
			w := rbddiff.NewWriter(out, rbddiff.Format(format))
			st, err := cluster.Export(cmd.Context(), ceph.ExportOptions{Image: spec, FromSnap: fromSnap, WholeObject: wholeObject}, w, meter)
			meter.Finish()
			if err != nil {
				return err
			}
			if err := commit(); err != nil || !asJSON {
				return err
			}
			return writeJSON(cmd.OutOrStdout(), newDiffReport(spec, args[1], st.Header, st.DataBytes, st.ZeroBytes))
		},
	}
	cf.register(cmd.Flags())
	cmd.Flags().StringVar(&fromSnap, "from-snap", "", "export only the changes since this snapshot")
	cmd.Flags().BoolVar(&wholeObject, "whole-object", false, "report changes at whole-object granularity (faster scan, bigger diff)")
	cmd.Flags().IntVar(&format, "export-format", 1, "diff format: 1 (rbd diff v1) or 2 (rbd diff v2, adds protection status)")
	cmd.Flags().BoolVar(&noProgress, "no-progress", false, "do not show progress")
	addJSONFlag(cmd, &asJSON)
	return cmd
}

// openDiffOutput opens "-" (standard output) or a new file. A file is written
// under a temporary name and linked into place by commit, so PATH never holds
// a partial diff and an existing PATH is never replaced; once commit returns,
// the file and its name are on disk. abort removes the temporary file unless
// commit succeeded.
func openDiffOutput(path string) (out io.Writer, commit func() error, abort func(), err error) {
	if path == "-" {
		// The diff writer buffers small records itself and writes large
		// payloads straight through; another buffer would only copy them.
		return os.Stdout, func() error { return nil }, func() {}, nil
	}
	if _, err := os.Lstat(path); err == nil {
		return nil, nil, nil, fmt.Errorf("%s already exists; remove it or choose another path", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-*")
	if err != nil {
		return nil, nil, nil, err
	}
	committed := false
	commit = func() error {
		if err := tmp.Sync(); err != nil {
			return err
		}
		if err := tmp.Close(); err != nil {
			return err
		}
		if err := os.Link(tmp.Name(), path); err != nil { // fails rather than overwrite
			return fmt.Errorf("put diff in place: %w", err)
		}
		committed = true
		if err := os.Remove(tmp.Name()); err != nil {
			return err
		}
		return syncDir(filepath.Dir(path)) // the new name, or a crash could lose it
	}
	abort = func() {
		if !committed {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}
	return tmp, commit, abort, nil
}

// syncDir makes the entries of dir durable. Some filesystems (CIFS, some
// FUSE ones) cannot sync a directory; there the file itself was synced, and
// that is as far as they go.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOTSUP) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
