package main

import (
	"fmt"
	"os"
	"time"

	"github.com/ferry-dr/ferry/hooks"
	"github.com/spf13/cobra"
)

func newHookCommand() *cobra.Command {
	var (
		nf     natsFlags
		host   string
		budget time.Duration
	)
	cmd := &cobra.Command{
		Use:   "hook [qemu] DOMAIN OP [SUBOP [EXTRA]]",
		Short: "libvirt qemu hook: notify the agent of a domain operation (always exits 0)",
		Long: `Run by libvirtd as /etc/libvirt/hooks/qemu.d/ferry, synchronously, with the domain XML on
stdin. It only publishes a notice on ferry.hook.<host>.<op> for the agent and never calls back
into libvirt. It exits 0 within --budget even when NATS is down; problems go to stderr.`,
		Annotations:        map[string]string{lenientConfig: "1", alwaysExitsZero: "1"},
		Args:               cobra.ArbitraryArgs, // RunHook says what is missing
		DisableFlagParsing: false,
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("panic: %v", r)
				}
				if err != nil {
					printError("ferry hook:", err)
				}
				err = nil // libvirtd must never see the hook fail because of Ferry
			}()
			return hooks.RunHook(args, os.Stdin, hooks.HookOptions{
				Host:   host,
				Notice: hooks.NoticeOptions{URL: nf.url, Creds: nf.creds, CA: nf.ca, Cert: nf.cert, Key: nf.key, Timeout: budget * 3 / 4},
				Budget: budget,
			})
		},
	}
	hostname, _ := os.Hostname()
	cmd.Flags().StringVar(&host, "host", hostname, "host name in the notice subject")
	cmd.Flags().DurationVar(&budget, "budget", 50*time.Millisecond, "longest time the hook may take once started (process start adds ~30-40 ms)")
	nf.register(cmd.Flags())
	return cmd
}
