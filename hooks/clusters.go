package hooks

import (
	"fmt"
	"sync"

	"github.com/ferry-dr/ferry/internal/ceph"
)

// Clusters connects to the Ceph cluster that holds each disk. A disk whose
// monitor list includes a host:port in ByMonitor uses that cluster's
// options; any other disk uses Default. Connections are opened once and
// kept, so a snapshot never waits for a connection while the guest is
// frozen.
type Clusters struct {
	Default   ceph.ConnOptions
	ByMonitor map[string]ceph.ConnOptions

	mu    sync.Mutex
	conns map[ceph.ConnOptions]*ceph.Cluster
}

// For returns the connection for disk d.
func (cs *Clusters) For(d Disk) (*ceph.Cluster, error) {
	opts := cs.Default
	for _, m := range d.Monitors {
		if o, ok := cs.ByMonitor[m]; ok {
			opts = o
			break
		}
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if c, ok := cs.conns[opts]; ok {
		return c, nil
	}
	c, err := ceph.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("disk %s (%s): %w", d.Target, d.Image, err)
	}
	if cs.conns == nil {
		cs.conns = make(map[ceph.ConnOptions]*ceph.Cluster)
	}
	cs.conns[opts] = c
	return c, nil
}

// Close closes every connection.
func (cs *Clusters) Close() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for k, c := range cs.conns {
		c.Close()
		delete(cs.conns, k)
	}
}
