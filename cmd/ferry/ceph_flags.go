package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/spf13/pflag"
)

// cephConfigDir is where --cluster NAME finds NAME.conf, as rbd does.
const cephConfigDir = "/etc/ceph"

// The options that select a cluster and an identity; each may be set by
// several flags (rbd's names, the two-site names, old names).
const (
	optConf    = "conf"
	optCluster = "cluster"
	optID      = "id"
	optKeyring = "keyring"
)

// cephFlags select one Ceph cluster and a cephx identity, with rbd's names:
// -c/--conf, --cluster, --id, --user, -n/--name, -k/--keyring. A command on
// a site's cluster also takes its two-site names (--source-conf,
// --source-cluster, --source-id, --source-keyring, and --backup-... for the
// backup site), which mean the same on every command. What the command line
// leaves unset comes from the configuration's section ceph.<site> (source
// when site is empty), then from librados (CEPH_CONF, /etc/ceph/ceph.conf).
type cephFlags struct {
	site string // "source", "backup", or "" for a command on any cluster

	// The config-bound flags' values: the command line's, else the config's.
	conf, id, keyring string

	fs    *pflag.FlagSet
	flags map[string][]string // option -> the flags that set it
}

// register adds the options of the cluster the command works on: rbd's
// names and, for a site, its two-site names for the same cluster.
func (f *cephFlags) register(fs *pflag.FlagSet) {
	f.init(fs)
	what := f.what()
	f.add(optConf, "conf", "c", &f.conf, "ceph.conf of "+what+" (default: $CEPH_CONF, then /etc/ceph/ceph.conf)")
	f.add(optCluster, "cluster", "", nil, "cluster name: ceph.conf "+cephConfigDir+"/NAME.conf and, unless it names one, keyring "+cephConfigDir+"/NAME.client.ID.keyring")
	f.add(optID, "id", "", &f.id, "cephx client id, without the 'client.' prefix (default: admin)")
	f.add(optID, "user", "", nil, "same as --id")
	f.add(optID, "name", "n", nil, "cephx client name, client.ID (same as --id ID)")
	f.add(optKeyring, "keyring", "k", &f.keyring, "keyring of that id (default: the one ceph.conf names, else ceph's default paths)")
	f.bind("conf", "id", "keyring")
	if f.site != "" {
		f.addSite(false)
	}
}

// registerSite adds only the two-site names, for a command's second
// cluster (verify's backup cluster, restore's target at the source site).
// With fromConfig, what they leave unset comes from ceph.<site>; note ends
// the help of its conf flag.
func (f *cephFlags) registerSite(fs *pflag.FlagSet, fromConfig bool, note string) {
	f.init(fs)
	f.addSite(true)
	if note != "" {
		fs.Lookup(f.site + "-conf").Usage += note
	}
	if p := f.site + "-"; fromConfig {
		f.bind(p+"conf", p+"id", p+"keyring")
	}
}

// addSite adds the site's two-site names: the only names of the cluster
// (own), or other names of the cluster of rbd's names.
func (f *cephFlags) addSite(own bool) {
	p, what := f.site+"-", f.what()
	conf, id, keyring := &f.conf, &f.id, &f.keyring
	same := func(string) string { return "" }
	if !own {
		conf, id, keyring = nil, nil, nil
		same = func(flag string) string { return " (same as " + flag + ")" }
	}
	f.add(optConf, p+"conf", "", conf, "ceph.conf of "+what+same("-c"))
	f.add(optCluster, p+"cluster", "", nil, "cluster name of "+what+same("--cluster"))
	f.add(optID, p+"id", "", id, "cephx client id at "+what+same("--id"))
	f.add(optKeyring, p+"keyring", "", keyring, "keyring of that id"+same("-k"))
}

// deprecated adds old as a hidden name of opt that still works, with a
// warning, for one release.
func (f *cephFlags) deprecated(old, opt string) {
	f.add(opt, old, "", nil, "")
	_ = f.fs.MarkDeprecated(old, fmt.Sprintf("use --%s-%s; --%s goes in the next release", f.site, opt, old))
}

func (f *cephFlags) init(fs *pflag.FlagSet) {
	f.fs = fs
	if f.flags == nil {
		f.flags = map[string][]string{}
	}
}

func (f *cephFlags) what() string {
	if f.site == "" {
		return "the cluster"
	}
	return "the " + f.site + " cluster"
}

// add registers one more flag that sets opt, into p if it is one of the
// config-bound values.
func (f *cephFlags) add(opt, name, short string, p *string, usage string) {
	if p == nil {
		p = new(string)
	}
	f.fs.StringVarP(p, name, short, "", usage)
	f.flags[opt] = append(f.flags[opt], name)
}

// bind ties the flags of conf, id and keyring to the site's config keys.
func (f *cephFlags) bind(conf, id, keyring string) {
	section := "ceph.source"
	if f.site == "backup" {
		section = "ceph.backup"
	}
	bindConfig(f.fs, conf, section+".conf")
	bindConfig(f.fs, id, section+".id")
	bindConfig(f.fs, keyring, section+".keyring")
}

// named tells whether the command line set any of these options.
func (f *cephFlags) named() bool {
	for _, names := range f.flags {
		for _, n := range names {
			if f.fs.Changed(n) {
				return true
			}
		}
	}
	return false
}

// given is opt's value from the command line ("" if no flag set it); two
// flags of opt with different values are an error.
func (f *cephFlags) given(opt string) (string, error) {
	var val, from string
	for _, n := range f.flags[opt] {
		if !f.fs.Changed(n) {
			continue
		}
		v := f.fs.Lookup(n).Value.String()
		if n == "name" {
			id, ok := strings.CutPrefix(v, "client.")
			if !ok || id == "" {
				return "", fmt.Errorf("--%s %q: Ferry connects as a client: give client.ID, or --id ID", n, v)
			}
			v = id
		}
		if from != "" && v != val {
			return "", fmt.Errorf("--%s %q and --%s %q name two different %ss: give one", from, val, n, v, opt)
		}
		val, from = v, n
	}
	return val, nil
}

// options resolves the flags as rbd does. --cluster NAME reads
// /etc/ceph/NAME.conf unless -c names another file, and takes the keyring
// from -k, else from what NAME.conf names, else from ceph's default paths
// for NAME (/etc/ceph/NAME.client.ID.keyring first), never from the
// configuration: its keyring belongs to the cluster it names. Errors are
// usage errors.
func (f *cephFlags) options() (ceph.ConnOptions, error) {
	var o ceph.ConnOptions
	for _, opt := range []struct {
		name string
		val  *string
	}{{optConf, &o.Conf}, {optCluster, &o.Cluster}, {optID, &o.ID}, {optKeyring, &o.Keyring}} {
		v, err := f.given(opt.name)
		if err != nil {
			return o, withExitCode(exitUsage, err)
		}
		*opt.val = v
	}
	if o.Cluster != "" {
		if strings.ContainsAny(o.Cluster, "/ \t") || strings.HasPrefix(o.Cluster, ".") {
			return o, withExitCode(exitUsage, fmt.Errorf("--cluster %q: give a cluster's name, as in %s/NAME.conf (or a ceph.conf with -c)", o.Cluster, cephConfigDir))
		}
		if o.Conf == "" {
			o.Conf = filepath.Join(cephConfigDir, o.Cluster+".conf")
		}
	} else {
		if o.Conf == "" {
			o.Conf = f.conf
		}
		if o.Keyring == "" {
			o.Keyring = f.keyring
		}
	}
	if o.ID == "" {
		o.ID = f.id
	}
	return o, nil
}

// checkCeph resolves each command line's clusters, so that a mistake in the
// options of any is reported before the first is connected to.
func checkCeph(fs ...*cephFlags) error {
	for _, f := range fs {
		if _, err := f.options(); err != nil {
			return err
		}
	}
	return nil
}

func (f *cephFlags) connect() (*ceph.Cluster, error) {
	o, err := f.options()
	if err != nil {
		return nil, err
	}
	return ceph.Connect(o)
}
