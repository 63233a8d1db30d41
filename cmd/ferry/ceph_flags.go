package main

import (
	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/spf13/pflag"
)

// cephFlags are rbd's connection options: -c/--conf, --id, --keyring.
// Without -c, librados reads CEPH_CONF, then /etc/ceph/ceph.conf.
// Their defaults come from the config section of site: ceph.source unless
// site is "backup" (commands that write the backup cluster set it).
type cephFlags struct {
	conf, id, keyring string
	site              string
}

func (f *cephFlags) register(fs *pflag.FlagSet) {
	fs.StringVarP(&f.conf, "conf", "c", "", "path to ceph.conf (default: $CEPH_CONF, then /etc/ceph/ceph.conf)")
	fs.StringVar(&f.id, "id", "", "cephx client id, without the 'client.' prefix (default: admin)")
	fs.StringVar(&f.keyring, "keyring", "", "path to the keyring (default: from ceph.conf)")
	site := "ceph.source"
	if f.site == "backup" {
		site = "ceph.backup"
	}
	bindConfig(fs, "conf", site+".conf")
	bindConfig(fs, "id", site+".id")
	bindConfig(fs, "keyring", site+".keyring")
}

func (f *cephFlags) connect() (*ceph.Cluster, error) {
	return ceph.Connect(ceph.ConnOptions{Conf: f.conf, ID: f.id, Keyring: f.keyring})
}
