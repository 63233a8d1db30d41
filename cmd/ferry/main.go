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

// memoryLimit keeps a backup's working set, with Go's garbage collector
// headroom, inside the memory a hypervisor can spare. It is soft: the
// collector works harder near it, at a measured cost in CPU
// (docs/performance.md). The I/O buffers are C memory, outside it.
// GOMEMLIMIT overrides it.
const memoryLimit = 80 << 20

// natsServerMemoryLimit replaces memoryLimit in the embedded NATS server,
// whose file store keeps the blocks it has just written in memory for the
// consumer's reads. At 80 MiB its collector and the scavenger worked without
// pause; more than 160 MiB saved no CPU (docs/performance.md).
const natsServerMemoryLimit = 160 << 20

// setMemoryLimit applies limit unless GOMEMLIMIT chose one.
func setMemoryLimit(limit int64) {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(limit)
	}
}

// warnMalloc reports a glibc tuning that did not apply; Ferry runs on
// without it.
func warnMalloc(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferry: warning:", err, "(resident memory may be tens of MiB higher)")
	}
}

func main() {
	setMemoryLimit(memoryLimit)
	warnMalloc(ceph.LimitMallocArenas())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go ceph.ReturnFreeMemory(ctx)
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
		newKeysCommand(),
		newVerifyCommand(),
		newRetentionCommand(),
		newScrubCommand(),
		newConfigCommand(),
	)
	return root
}
