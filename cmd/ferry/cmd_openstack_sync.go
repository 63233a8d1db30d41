package main

import (
	"cmp"
	"log/slog"
	"time"

	"github.com/ferry-dr/ferry/internal/openstack"
	"github.com/spf13/cobra"
)

func newOpenStackSyncCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "openstack-sync", Short: "Show backup status in Cinder volume and Nova server metadata"}
	var (
		nf                   natsFlags
		site                 string
		cloud, region, iface string
		cacert               string
		noauthURL, noauthPrj string
		maxBackoff           time.Duration
		verbose              bool
	)
	run := &cobra.Command{
		Use:   "run",
		Short: "Write each image's backup status (ferry:* keys) into OpenStack as it changes",
		Long: `Watches the state bucket of the backup site and writes each image's status into the
metadata of its Cinder volume (image volume-<id>, or the volume id of the snapshot event) or,
for a Nova ephemeral disk (<server id>_disk), of its server. Only ferry:* keys are written;
other keys stay. Credentials: OS_CLOUD (clouds.yaml, secure.yaml) or the OS_* variables of an
openrc file, including application credentials.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			log := newLogger(level)
			cfg, err := openstack.ConfigFromEnv()
			if err != nil {
				return err
			}
			// Flags beat the environment, as in the openstack client.
			cfg.Cloud = cmp.Or(cloud, cfg.Cloud)
			cfg.Region = cmp.Or(region, cfg.Region)
			cfg.Interface = cmp.Or(iface, cfg.Interface)
			cfg.CACert = cmp.Or(cacert, cfg.CACert)
			cfg.NoAuthEndpoint, cfg.NoAuthProject = noauthURL, noauthPrj
			clients, err := openstack.Connect(ctx, cfg)
			if err != nil {
				return err
			}
			conn, err := nf.connect("ferry openstack-sync")
			if err != nil {
				return err
			}
			defer conn.Close()
			s, err := openstack.NewSyncer(ctx, conn.Backup, openstack.NewMetadata(clients),
				openstack.SyncOptions{Site: site, MaxBackoff: maxBackoff, Log: log})
			if err != nil {
				return err
			}
			log.Info("openstack-sync running", "site", site, "nova", clients.Compute != nil)
			return s.Run(ctx)
		},
	}
	nf.register(run.Flags())
	f := run.Flags()
	f.StringVar(&site, "site", "backup", "backup site name written as ferry:site")
	f.StringVar(&cloud, "os-cloud", "", "cloud of clouds.yaml ($OS_CLOUD)")
	f.StringVar(&region, "os-region-name", "", "region ($OS_REGION_NAME)")
	f.StringVar(&iface, "os-interface", "", "endpoint interface: public, internal, admin ($OS_INTERFACE)")
	f.StringVar(&cacert, "os-cacert", "", "CA bundle for the APIs' TLS certificates ($OS_CACERT)")
	f.StringVar(&noauthURL, "cinder-noauth-endpoint", "", "Cinder v3 URL of a noauth Cinder (tests, standalone Cinder); no Nova then")
	f.StringVar(&noauthPrj, "cinder-noauth-project", "", "project id for --cinder-noauth-endpoint")
	f.DurationVar(&maxBackoff, "max-backoff", 10*time.Minute, "longest wait between retries of a failed write")
	f.BoolVarP(&verbose, "verbose", "v", false, "also log every write and every ignored image")
	cmd.AddCommand(run)
	return cmd
}
