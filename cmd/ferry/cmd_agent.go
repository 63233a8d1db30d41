package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/ferry-dr/ferry/hooks"
	"github.com/ferry-dr/ferry/internal/config"
	"github.com/ferry-dr/ferry/internal/openstack"
	"github.com/spf13/cobra"
)

func newAgentCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "agent", Short: "The hypervisor host's daemon: consistent VM snapshots"}
	var (
		cf              = cephFlags{site: "source"}
		nf              natsFlags
		uri, host, dir  string
		domains         []string
		every, deadline time.Duration
		onShutdown      bool
		requireQuiesce  bool
		verbose         bool
		of              openstackFlags
		policyFlags     []string
		useOpenStack    bool
		allProjects     bool
		policyRefresh   time.Duration
		shutdown        time.Duration
	)
	run := &cobra.Command{
		Use:   "run",
		Short: "Snapshot VMs (frozen through the guest agent) on schedules, on request and at shutdown",
		Long: `Snapshot the RBD disks of libvirt VMs consistently and queue them for the publisher.

Triggers: every --every for each --domain (or, without --domain, the
configuration's agent.schedules, DOMAIN: INTERVAL); a NATS request on ferry.agent.<host>.backup
with {"domain": "NAME"} (the reply carries the result); and with --backup-on-shutdown a
final backup when a domain stops. The agent reconnects to libvirtd when it restarts, and
thaws guests that a crashed earlier run left frozen (markers in --state-dir).

With --openstack, VMs also opt in through OpenStack metadata: a Cinder volume (or, for
ephemeral disks, the Nova server) with ferry:policy=NAME is backed up every INTERVAL of
--policy NAME=INTERVAL (or agent.policies in the configuration). Credentials as for openstack-sync: OS_CLOUD or OS_* variables.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			schedules, policies, err := agentSchedules(loadedConfig(cmd), domains, every, policyFlags)
			if err != nil {
				return err
			}
			if useOpenStack != (len(policies) > 0) {
				return errors.New("--openstack and --policy go together: --openstack --policy daily=24h (or agent.openstack and agent.policies in the configuration)")
			}
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			log := newLogger(level)
			// Finished last: the deadline covers closing NATS and Ceph too.
			life := lifeline{log: log, timeout: shutdown}
			defer life.finish()
			conn, err := nf.connect("ferry agent " + host)
			if err != nil {
				return err
			}
			defer conn.Close()
			life.conn = conn
			cephConn, err := cf.options()
			if err != nil {
				return err
			}
			clusters := &hooks.Clusters{Default: cephConn}
			defer clusters.Close()
			var source hooks.PolicySource
			if useOpenStack {
				clients, err := of.connect(cmd.Context())
				if err != nil {
					return err
				}
				source = openstack.PolicySource{Clients: clients, AllProjects: allProjects}
			}
			agent := hooks.NewAgent(hooks.AgentOptions{
				URI: uri, Host: host, Schedules: schedules, BackupOnShutdown: onShutdown,
				Snapshot: hooks.SnapshotOptions{RequireQuiesce: requireQuiesce, FreezeDeadline: deadline, MarkerDir: dir},
				Clusters: clusters, Bus: conn, Log: log,
				PolicySource: source, Policies: policies, PolicyRefresh: policyRefresh,
			})
			return life.run(cmd.Context(), agent.Run)
		},
	}
	hostname, _ := os.Hostname()
	fs := run.Flags()
	fs.StringVar(&uri, "libvirt", "qemu:///system", "libvirt URI")
	fs.StringVar(&host, "host", hostname, "host name in NATS subjects (ferry.agent.<host>.backup, ferry.hook.<host>.<op>)")
	fs.StringArrayVar(&domains, "domain", nil, "back up this domain (name or UUID) every --every; repeatable")
	fs.DurationVar(&every, "every", 0, "interval of the --domain schedules, e.g. 1h")
	fs.BoolVar(&onShutdown, "backup-on-shutdown", false, "take a final backup when a domain stops")
	bindConfig(fs, "backup-on-shutdown", "agent.backup_on_shutdown")
	registerShutdownTimeout(fs, &shutdown)
	fs.BoolVar(&requireQuiesce, "require-quiesce", false, "fail instead of taking a crash-consistent snapshot when a running guest cannot be frozen (Nova's os_require_quiesce)")
	fs.DurationVar(&deadline, "freeze-deadline", hooks.DefaultFreezeDeadline, "longest time a guest stays frozen; the guest is thawed and the snapshot fails when it passes")
	fs.StringVar(&dir, "state-dir", "/var/lib/ferry/agent", "directory of frozen markers, used to thaw guests after a crash")
	fs.BoolVarP(&verbose, "verbose", "v", false, "log every domain event")
	fs.StringArrayVar(&policyFlags, "policy", nil, "a backup policy NAME=INTERVAL (e.g. daily=24h) for VMs whose disks carry ferry:policy=NAME; repeatable")
	fs.BoolVar(&useOpenStack, "openstack", false, "read ferry:policy from Cinder volume and Nova server metadata (OS_CLOUD or OS_* credentials)")
	fs.BoolVar(&allProjects, "all-projects", false, "with --openstack: read every project's volumes and servers (needs an admin role)")
	fs.DurationVar(&policyRefresh, "policy-refresh", hooks.DefaultPolicyRefresh, "how often to read ferry:policy from OpenStack again")
	bindConfig(fs, "openstack", "agent.openstack")
	bindConfig(fs, "all-projects", "agent.all_projects")
	bindConfig(fs, "policy-refresh", "agent.policy_refresh")
	of.register(fs)
	cf.register(fs)
	nf.register(fs)
	cmd.AddCommand(run)
	return cmd
}

// agentSchedules gives the agent's schedules and policies: the flags', or
// where the command line gives none, the configuration's (agent.schedules,
// agent.policies). Flags replace the configuration's list; they do not add
// to it.
func agentSchedules(c *config.Config, domains []string, every time.Duration, policyFlags []string) ([]hooks.Schedule, map[string]time.Duration, error) {
	if len(domains) > 0 && every <= 0 {
		return nil, nil, errors.New("--domain needs --every (for example --every 1h)")
	}
	if every > 0 && len(domains) == 0 {
		return nil, nil, errors.New("--every needs at least one --domain")
	}
	var schedules []hooks.Schedule
	for _, d := range domains {
		schedules = append(schedules, hooks.Schedule{Domain: d, Every: every})
	}
	if len(domains) == 0 {
		intervals, err := c.Agent.Schedules.Durations()
		if err != nil {
			return nil, nil, fmt.Errorf("agent.schedules: %w", err)
		}
		for _, p := range c.Agent.Schedules { // in the file's order
			schedules = append(schedules, hooks.Schedule{Domain: p.Name, Every: intervals[p.Name]})
		}
	}
	if len(policyFlags) == 0 {
		policies, err := c.Agent.Policies.Durations()
		if err != nil {
			return nil, nil, fmt.Errorf("agent.policies: %w", err)
		}
		return schedules, policies, nil
	}
	policies, err := parsePolicies(policyFlags)
	return schedules, policies, err
}

// parsePolicies reads --policy NAME=INTERVAL flags.
func parsePolicies(flags []string) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for _, f := range flags {
		name, interval, ok := strings.Cut(f, "=")
		d, err := time.ParseDuration(interval)
		if !ok || name == "" || err != nil || d <= 0 {
			return nil, fmt.Errorf("--policy %q: want NAME=INTERVAL with a positive interval, e.g. daily=24h", f)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("--policy %s given twice", name)
		}
		out[name] = d
	}
	return out, nil
}
