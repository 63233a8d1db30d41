package main

import (
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/ferry-dr/ferry/hooks"
	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/spf13/cobra"
)

func newAgentCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "agent", Short: "The hypervisor host's daemon: consistent VM snapshots"}
	var (
		cf              cephFlags
		nf              natsFlags
		uri, host, dir  string
		domains         []string
		every, deadline time.Duration
		onShutdown      bool
		requireQuiesce  bool
		verbose         bool
	)
	run := &cobra.Command{
		Use:   "run",
		Short: "Snapshot VMs (frozen through the guest agent) on schedules, on request and at shutdown",
		Long: `Snapshot the RBD disks of libvirt VMs consistently and queue them for the publisher.

Triggers: every --every for each --domain; a NATS request on ferry.agent.<host>.backup
with {"domain": "NAME"} (the reply carries the result); and with --backup-on-shutdown a
final backup when a domain stops. The agent reconnects to libvirtd when it restarts, and
thaws guests that a crashed earlier run left frozen (markers in --state-dir).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(domains) > 0 && every <= 0 {
				return errors.New("--domain needs --every (for example --every 1h)")
			}
			if every > 0 && len(domains) == 0 {
				return errors.New("--every needs at least one --domain")
			}
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			log := newLogger(level)
			conn, err := nf.connect("ferry agent " + host)
			if err != nil {
				return err
			}
			defer conn.Close()
			clusters := &hooks.Clusters{Default: ceph.ConnOptions{Conf: cf.conf, ID: cf.id, Keyring: cf.keyring}}
			defer clusters.Close()
			var schedules []hooks.Schedule
			for _, d := range domains {
				schedules = append(schedules, hooks.Schedule{Domain: d, Every: every})
			}
			return hooks.NewAgent(hooks.AgentOptions{
				URI: uri, Host: host, Schedules: schedules, BackupOnShutdown: onShutdown,
				Snapshot: hooks.SnapshotOptions{RequireQuiesce: requireQuiesce, FreezeDeadline: deadline, MarkerDir: dir},
				Clusters: clusters, Bus: conn, Log: log,
			}).Run(cmd.Context())
		},
	}
	hostname, _ := os.Hostname()
	fs := run.Flags()
	fs.StringVar(&uri, "libvirt", "qemu:///system", "libvirt URI")
	fs.StringVar(&host, "host", hostname, "host name in NATS subjects (ferry.agent.<host>.backup, ferry.hook.<host>.<op>)")
	fs.StringArrayVar(&domains, "domain", nil, "back up this domain (name or UUID) every --every; repeatable")
	fs.DurationVar(&every, "every", 0, "interval of the --domain schedules, e.g. 1h")
	fs.BoolVar(&onShutdown, "backup-on-shutdown", false, "take a final backup when a domain stops")
	fs.BoolVar(&requireQuiesce, "require-quiesce", false, "fail instead of taking a crash-consistent snapshot when a running guest cannot be frozen (Nova's os_require_quiesce)")
	fs.DurationVar(&deadline, "freeze-deadline", hooks.DefaultFreezeDeadline, "longest time a guest stays frozen; the guest is thawed and the snapshot fails when it passes")
	fs.StringVar(&dir, "state-dir", "/var/lib/ferry/agent", "directory of frozen markers, used to thaw guests after a crash")
	fs.BoolVarP(&verbose, "verbose", "v", false, "log every domain event")
	cf.register(fs)
	nf.register(fs)
	cmd.AddCommand(run)
	return cmd
}
