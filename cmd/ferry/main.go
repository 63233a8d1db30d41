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
// collector works harder near it (the consumer used about 10% more CPU of
// its own at 80 MiB than at 128 MiB, on a 1 GiB import). The I/O buffers
// are C memory, outside it. GOMEMLIMIT overrides it.
const memoryLimit = 80 << 20

// natsServerMemoryLimit replaces memoryLimit in the embedded NATS server,
// whose file store keeps the blocks it has just written in memory for the
// consumer's reads. At 80 MiB its collector and the scavenger worked without
// pause and the server took 5.9-9.2 CPU-seconds for a 1 GiB backup, the most
// of any process; at 160 MiB 3.2-3.7 with a resident size of 199-206 MiB,
// and at 192 MiB no less CPU for 224-246 MiB.
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
		newInitCommand(),
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
