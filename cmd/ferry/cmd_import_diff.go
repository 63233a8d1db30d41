package main

import (
	"bufio"
	"io"
	"os"
	"time"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/progress"
	"github.com/ferry-dr/ferry/internal/rbddiff"
	"github.com/spf13/cobra"
)

func newImportDiffCommand() *cobra.Command {
	var (
		cf         cephFlags
		noProgress bool
		asJSON     bool
	)
	cmd := &cobra.Command{
		Use:   "import-diff PATH|- POOL/IMAGE",
		Short: "Apply an rbd diff stream to an image (like rbd import-diff)",
		Long: `Apply the diff in PATH (or standard input for "-") to POOL/IMAGE. If the diff starts
at a snapshot, the image must have it; a full diff creates the image if it does not exist.
The diff's end snapshot is created once all data is written, and the image is resized to
the size the diff records.

An import that fails (a truncated or corrupt diff, say) leaves the image as it was: a diff
that fails before its first extent changes nothing, an image the import created is removed,
and an image whose head was still the diff's start snapshot (for a full diff: its newest
snapshot) is rolled back to it. Otherwise (an image with data and no snapshot, or a head
written since the snapshot) the error says how the size changed and which range was written.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := ferry.ParseImageSpec(args[1])
			if err != nil {
				return err
			}
			meter := progress.NewMeter("Importing into "+spec.String(), progress.StderrIfTerminal(noProgress), 200*time.Millisecond)
			// Progress counts bytes of the diff read, so a file gives an ETA.
			var in io.Reader = os.Stdin
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer func() { _ = f.Close() }()
				if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
					meter.SetTotal(uint64(st.Size()))
				}
				in = f
			}
			cluster, err := cf.connect()
			if err != nil {
				return err
			}
			defer cluster.Close()
			src := rbddiff.NewReader(bufio.NewReaderSize(progress.CountReader(in, meter), 1<<20))
			st, err := cluster.ImportOrUndo(cmd.Context(), spec, src, nil)
			meter.Finish()
			if err != nil || !asJSON {
				return err
			}
			return writeJSON(cmd.OutOrStdout(), newDiffReport(spec, args[0], st.Header, st.DataBytes, st.ZeroBytes))
		},
	}
	cf.register(cmd.Flags())
	cmd.Flags().BoolVar(&noProgress, "no-progress", false, "do not show progress")
	addJSONFlag(cmd, &asJSON)
	return cmd
}
