package main

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/spf13/cobra"
)

func newNATSServerCommand() *cobra.Command {
	var (
		store, listen, domain, leafListen string
		leafRemotes                       []string
	)
	cmd := &cobra.Command{
		Use:   "nats-server --store DIR",
		Short: "Run the embedded NATS server with JetStream (nothing else to install)",
		Long: `Run a NATS server with JetStream inside ferry, storing streams under --store.
One server serves a single machine or site. For two sites, give each its own --domain and
join the source site's server to the backup site's with --leafnode-remote.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			setMemoryLimit(natsServerMemoryLimit)
			host, portStr, err := net.SplitHostPort(listen)
			if err != nil {
				return fmt.Errorf("--listen %q: %w", listen, err)
			}
			port, err := strconv.Atoi(portStr)
			if err != nil {
				return fmt.Errorf("--listen %q: bad port", listen)
			}
			o := bus.ServerOptions{Name: "ferry", StoreDir: store, Host: host, Port: port, Domain: domain, LeafRemotes: leafRemotes}
			if leafListen != "" {
				_, lp, err := net.SplitHostPort(leafListen)
				if err != nil {
					return fmt.Errorf("--leafnode-listen %q: %w", leafListen, err)
				}
				if o.LeafPort, err = strconv.Atoi(lp); err != nil {
					return fmt.Errorf("--leafnode-listen %q: bad port", leafListen)
				}
			}
			s, err := bus.StartServer(o)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "ferry nats-server: listening on %s, JetStream store %s\n", s.ClientURL(), store)
			<-cmd.Context().Done()
			s.Shutdown()
			s.WaitForShutdown()
			return nil
		},
	}
	cmd.Flags().StringVar(&store, "store", "", "JetStream store directory (required)")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:4222", "client address")
	cmd.Flags().StringVar(&domain, "domain", "", "JetStream domain of this site")
	cmd.Flags().StringVar(&leafListen, "leafnode-listen", "", "accept leafnode connections from another site on HOST:PORT")
	cmd.Flags().StringSliceVar(&leafRemotes, "leafnode-remote", nil, "join another site's leafnode port (nats-leaf://HOST:PORT)")
	_ = cmd.MarkFlagRequired("store")
	return cmd
}
