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
	"strings"
	"syscall"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ferry"
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
	if code := run(ctx, newRootCommand(), os.Args[1:]); code != exitOK {
		os.Exit(code)
	}
}

// run runs the command line args and returns the code to exit with,
// having reported any error on stderr.
func run(ctx context.Context, root *cobra.Command, args []string) int {
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil && cmd != nil && cmd.Annotations[alwaysExitsZero] != "" {
		// A usage error (a bad flag) never reached RunE, which reports the rest.
		printError("ferry "+cmd.Name()+":", fmt.Errorf("%w (did nothing; exiting 0 all the same)", err))
		return exitOK
	}
	if err != nil {
		printError("ferry:", err)
		return exitCodeOf(usageError(err))
	}
	return exitOK
}

// alwaysExitsZero marks a command whose caller must never see it fail
// (ferry hook: libvirtd treats a failed hook as a failed operation on the
// VM). Whatever goes wrong, bad flags included, is reported on stderr.
const alwaysExitsZero = "ferry-always-exits-zero"

// printError writes err to stderr with every line escaped: errors quote
// names and texts from messages and from the other site, which printed raw
// could drive the terminal.
func printError(prefix string, err error) {
	lines := strings.Split(err.Error(), "\n")
	for i, line := range lines {
		lines[i] = ferry.Printable(line)
	}
	fmt.Fprintln(os.Stderr, prefix, strings.Join(lines, "\n"))
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "ferry",
		Short: "Incremental, event-driven backup of Ceph RBD images to a remote site",
		Long: `Incremental, event-driven backup of Ceph RBD images to a remote site.

Exit codes, the same for every command: 0 done; 1 failed (stderr says why and what
to do); 2 usage error (unknown command or flag, wrong arguments, conflicting
options); 3 a backup differs from its source or is corrupt (verify, scrub); 4 ferry
status: an image failing or past its RPO, or no active consumer. ferry hook always
exits 0.`,
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
		newLsCommand(),
		newKeysCommand(),
		newVerifyCommand(),
		newRetentionCommand(),
		newScrubCommand(),
		newDrillCommand(),
		newConfigCommand(),
		newChunkKeyCommand(),
		newVersionCommand(),
	)
	addVersionFlag(root)
	usageErrors(root)
	return root
}
