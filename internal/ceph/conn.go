package ceph

import (
	"fmt"
	"maps"
	"sync"

	"github.com/ceph/go-ceph/rados"
)

// ConnOptions selects a cluster and a cephx identity, as rbd's -c, --id,
// --keyring and --cluster do. Empty fields fall back to librados defaults
// (CEPH_CONF, /etc/ceph/ceph.conf, client.admin).
type ConnOptions struct {
	Conf    string
	ID      string
	Keyring string
	// Cluster is the cluster's name ($cluster in ceph.conf and in the
	// default keyring paths, /etc/ceph/$cluster.$name.keyring); empty: ceph.
	Cluster string
}

// clientTimeouts keep a dead or unreachable cluster from hanging Ferry for
// librados' default of 300 s, and a stuck OSD from blocking a write forever.
var clientTimeouts = map[string]string{
	"client_mount_timeout": "30",
	"rados_osd_op_timeout": "120",
	"rados_mon_op_timeout": "30",
}

// librbdRaceSettings work around a use-after-free in librbd 16.2 (Pacific).
// When an open completes, the librados thread that finished it hands the
// opener its result and only then takes a lock inside the image's state
// again. An opener that reads and closes the image quickly can free that
// state first: the thread then locks freed memory, and the process aborts
// ("std::system_error: Invalid argument"), crashes, or that thread hangs and
// with it every later open. With one thread, the opener's result is
// delivered by that same thread after it has let go of the lock, so the
// close cannot overtake it. TestOpenCloseRace reproduces the race.
var librbdRaceSettings = map[string]string{
	"librados_thread_count": "1",
}

// importSettings make a discard of a partial range zero it instead of being
// silently skipped (librbd's default), so a 'z' record always lands.
var importSettings = map[string]string{
	"rbd_skip_partial_discard": "false",
	// Ferry reads and writes whole extents once: a cache only holds memory.
	"rbd_cache":                        "false",
	"rbd_discard_granularity_bytes":    "4096",
	"rbd_discard_on_zeroed_write_same": "false",
	// librbd sends writes from Ferry's buffers instead of copying each
	// one: the buffers are C memory, and none is reused or freed before its
	// write has been waited for (aioImage). Saves an import the 4 MiB
	// copies that glibc kept (docs/performance.md), and the consumer no longer needs
	// glibc to return such blocks at once. Pinned, so that a ceph.conf cannot
	// change what Ferry is tested with.
	"rbd_disable_zero_copy_writes": "false",
}

// Cluster is a connection to one Ceph cluster.
type Cluster struct {
	opts ConnOptions
	conn *rados.Conn

	mu     sync.Mutex
	ioctxs map[string]*rados.IOContext
}

// Connect opens a connection to the cluster described by opts.
func Connect(opts ConnOptions) (*Cluster, error) {
	if err := printAbortStacks(); err != nil {
		return nil, err
	}
	var conn *rados.Conn
	var err error
	switch {
	case opts.Cluster != "":
		conn, err = rados.NewConnWithClusterAndUser(opts.Cluster, "client."+idName(opts.ID))
	case opts.ID != "":
		conn, err = rados.NewConnWithUser(opts.ID)
	default:
		conn, err = rados.NewConn()
	}
	if err != nil {
		return nil, fmt.Errorf("ceph: create connection: %w", err)
	}
	if opts.Conf != "" {
		err = conn.ReadConfigFile(opts.Conf)
	} else {
		err = conn.ReadDefaultConfigFile()
	}
	if err != nil {
		return nil, fmt.Errorf("ceph: read config %s: %w (pass -c/--conf or set CEPH_CONF)", confName(opts.Conf), err)
	}
	settings := map[string]string{}
	for _, m := range []map[string]string{clientTimeouts, importSettings, librbdRaceSettings} {
		maps.Copy(settings, m)
	}
	if opts.Keyring != "" {
		settings["keyring"] = opts.Keyring
	}
	for k, v := range settings {
		if err := conn.SetConfigOption(k, v); err != nil {
			return nil, fmt.Errorf("ceph: set %s=%s: %w", k, v, err)
		}
	}
	if err := conn.Connect(); err != nil {
		return nil, fmt.Errorf("ceph: connect with %s as client.%s: %w (is the cluster up, and are the keyring and caps right?)",
			confName(opts.Conf), idName(opts.ID), err)
	}
	return &Cluster{opts: opts, conn: conn, ioctxs: map[string]*rados.IOContext{}}, nil
}

func confName(c string) string {
	if c == "" {
		return "the default ceph.conf"
	}
	return c
}

func idName(id string) string {
	if id == "" {
		return "admin"
	}
	return id
}

// ioctx returns a cached I/O context for pool.
func (c *Cluster) ioctx(pool string) (*rados.IOContext, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if io, ok := c.ioctxs[pool]; ok {
		return io, nil
	}
	io, err := c.conn.OpenIOContext(pool)
	if err != nil {
		return nil, fmt.Errorf("ceph: open pool %q: %w", pool, err)
	}
	c.ioctxs[pool] = io
	return io, nil
}

// FSID returns the cluster's fsid, which tells two sites apart.
func (c *Cluster) FSID() (string, error) { return c.conn.GetFSID() }

// Close releases the connection.
func (c *Cluster) Close() {
	c.mu.Lock()
	for _, io := range c.ioctxs {
		io.Destroy()
	}
	c.ioctxs = nil
	c.mu.Unlock()
	c.conn.Shutdown()
}
