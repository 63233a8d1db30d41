// Command ferry backs up Ceph RBD images of virtual machines to a remote
// site, incrementally. Each subcommand lives in its own cmd_<verb>.go file
// and only parses options before calling into internal/.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
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
	root.AddCommand(
		newBackupCommand(),
		newPublisherCommand(),
		newConsumerCommand(),
		newStatusCommand(),
		newNATSServerCommand(),
		newExportDiffCommand(),
		newImportDiffCommand(),
	)
	return root
}
