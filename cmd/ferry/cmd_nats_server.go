package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/spf13/cobra"
)

func newNATSServerCommand() *cobra.Command {
	var (
		store, listen, domain, leafListen, serverConfig string
		leafRemotes                                     []string
		leafNoAdvertise                                 bool
	)
	cmd := &cobra.Command{
		Use:   "nats-server (--server-config FILE | --store DIR)",
		Short: "Run the embedded NATS server with JetStream (nothing else to install)",
		Long: `Run a NATS server with JetStream inside ferry.

Its settings come from the nats_server section of the configuration file
(/etc/ferry/ferry.yaml for the packaged ferry-nats unit), or from the flags
below, which win: each flag names its key.

--server-config FILE (nats_server.server_config) loads a standard
nats-server configuration file: TLS for clients and leafnodes, users with
subject permissions, JetStream limits, clustering, the monitoring port,
logging. ferry init writes one per site for two sites joined by a TLS
leafnode, with one identity per role (see docs/security.md). --store gives
the JetStream store when the file names no store_dir.

Without it, the keys below run a server without TLS or authentication, for a
single host on loopback: --store, --listen, --domain, and for two sites
--leafnode-listen on one and --leafnode-remote on the other. When the other
site reaches the leafnode port through a relay, NAT or load balancer, give
--leafnode-no-advertise (in a configuration file: leafnodes { no_advertise: true }):
else this server tells it its own leafnode address, and the other site may
reconnect to that address, around the relay.

The store defaults to $STATE_DIRECTORY, which systemd sets from the unit's
StateDirectory= (/var/lib/ferry/nats for ferry-nats). The variable
FERRY_NATS_SERVER_ARGS of /etc/default/ferry-nats, which the unit still
passes on as flags, is deprecated: move its settings into nats_server.

The server logs to stderr (or the configuration's log_file).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if os.Getenv(natsServerArgsEnv) != "" {
				fmt.Fprintf(os.Stderr, "ferry nats-server: warning: %s (in /etc/default/ferry-nats) is deprecated and goes in the next release: move its settings into the nats_server section of the configuration file (ferry nats-server --help names each key)\n", natsServerArgsEnv)
			}
			if store == "" {
				// systemd's StateDirectory=; several are separated by ':'.
				store, _, _ = strings.Cut(os.Getenv("STATE_DIRECTORY"), ":")
			}
			setMemoryLimit(natsServerMemoryLimit)
			o, err := natsServerOptions(cmd, serverConfig, store, listen, domain, leafListen, leafRemotes)
			if err != nil {
				return err
			}
			o.LeafNoAdvertise = leafNoAdvertise
			s, err := bus.StartServer(o)
			if err != nil {
				return err
			}
			where := "JetStream store " + s.JetStreamConfig().StoreDir
			if serverConfig != "" {
				where += ", configuration " + serverConfig
			}
			fmt.Fprintf(os.Stderr, "ferry nats-server: listening on %s, %s\n", s.ClientURL(), where)
			<-cmd.Context().Done()
			s.Shutdown()
			s.WaitForShutdown()
			return nil
		},
	}
	cmd.Flags().StringVar(&serverConfig, "server-config", "", "nats-server configuration file (TLS, users, permissions, leafnodes); replaces the flags below")
	cmd.Flags().StringVar(&store, "store", "", "JetStream store directory (with --server-config: when the file names no store_dir)")
	cmd.Flags().StringVar(&listen, "listen", defaults.NATSServer.Listen, "client address")
	cmd.Flags().StringVar(&domain, "domain", "", "JetStream domain of this site")
	cmd.Flags().StringVar(&leafListen, "leafnode-listen", "", "accept leafnode connections from another site on HOST:PORT")
	cmd.Flags().StringSliceVar(&leafRemotes, "leafnode-remote", nil, "join another site's leafnode port (nats-leaf://HOST:PORT)")
	cmd.Flags().BoolVar(&leafNoAdvertise, "leafnode-no-advertise", false, "do not tell the sites that join this leafnode port its address (they are behind a relay or NAT, and must keep the address they were given)")
	for flag, key := range map[string]string{"server-config": "server_config", "store": "store_dir", "listen": "listen", "domain": "domain",
		"leafnode-listen": "leafnode_listen", "leafnode-remote": "leafnode_remotes", "leafnode-no-advertise": "leafnode_no_advertise"} {
		bindConfig(cmd.Flags(), flag, "nats_server."+key)
	}
	return cmd
}

// natsServerArgsEnv held the packaged unit's flags before the nats_server
// section; the unit still passes it on, for one release.
const natsServerArgsEnv = "FERRY_NATS_SERVER_ARGS"

func natsServerOptions(cmd *cobra.Command, serverConfig, store, listen, domain, leafListen string, leafRemotes []string) (bus.ServerOptions, error) {
	o := bus.ServerOptions{Name: "ferry", Log: true}
	if serverConfig != "" {
		for _, f := range []string{"listen", "domain", "leafnode-listen", "leafnode-remote", "leafnode-no-advertise"} {
			if cmd.Flags().Changed(f) {
				return o, fmt.Errorf("--%s and --server-config: set it in the configuration file instead (the file says everything when it is given)", f)
			}
		}
		o.ConfigFile, o.StoreDir = serverConfig, store
		return o, nil
	}
	if store == "" {
		return o, errors.New("no JetStream store: set nats_server.store_dir (or nats_server.server_config) in the configuration, or give --store DIR (or --server-config FILE)")
	}
	host, port, err := splitHostPort("--listen", listen)
	if err != nil {
		return o, err
	}
	o.StoreDir, o.Host, o.Port, o.Domain, o.LeafRemotes = store, host, port, domain, leafRemotes
	if leafListen != "" {
		if o.LeafHost, o.LeafPort, err = splitHostPort("--leafnode-listen", leafListen); err != nil {
			return o, err
		}
		if o.LeafHost == "" { // ":7422", as Go's listeners take it
			o.LeafHost = "0.0.0.0"
		}
	}
	return o, nil
}

func splitHostPort(flag, addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%s %q: %w", flag, addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return "", 0, fmt.Errorf("%s %q: bad port", flag, addr)
	}
	return host, port, nil
}
