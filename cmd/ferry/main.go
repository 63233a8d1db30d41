// Command ferry backs up Ceph RBD images of virtual machines to a remote
// site, incrementally. Each subcommand lives in its own cmd_<verb>.go file
// and only parses options before calling into internal/.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/spf13/cobra"
)

// defaultMemoryLimit keeps a backup's working set, with Go's garbage
// collector headroom, inside the memory a hypervisor can spare. It is soft:
// the collector works harder near it. GOMEMLIMIT overrides it. It was 128
// MiB while the export's ~40 MiB of I/O buffers were Go memory; they are C
// memory now (internal/ceph's asynchronous reads), outside the limit.
const defaultMemoryLimit = 96 << 20

// consumerMemoryLimit is lower: the consumer runs for months beside
// librbd's own buffers, and every backup it imports passes through the same
// few reused buffers, so a tighter limit costs it little CPU (about 10%
// more of its own, measured on a 1 GiB import) and keeps its resident size
// about 45 MiB lower.
const consumerMemoryLimit = 80 << 20

// setMemoryLimit applies limit unless GOMEMLIMIT chose one.
func setMemoryLimit(limit int64) {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(limit)
	}
}

func main() {
	setMemoryLimit(defaultMemoryLimit)
	if err := ceph.LimitMallocArenas(); err != nil {
		fmt.Fprintln(os.Stderr, "ferry: warning:", err, "(resident memory may be tens of MiB higher)")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "ferry:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "ferry",
		Short:         "Incremental, event-driven backup of Ceph RBD images to a remote site",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	addConfigFlag(root)
	root.AddCommand(
		newBackupCommand(),
		newPublisherCommand(),
		newConsumerCommand(),
		newStatusCommand(),
		newOpenStackSyncCommand(),
		newNATSServerCommand(),
		newExportDiffCommand(),
		newImportDiffCommand(),
		newAgentCommand(),
		newHookCommand(),
		newRestoreCommand(),
		newVerifyCommand(),
		newRetentionCommand(),
		newScrubCommand(),
		newConfigCommand(),
	)
	return root
}
