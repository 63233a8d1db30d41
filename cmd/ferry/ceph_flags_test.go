package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/spf13/cobra"
)

// resolveCeph runs a command with the cluster flags register adds through
// the real root command (so the configuration applies) and resolves them.
func resolveCeph(t *testing.T, config string, register func(*cobra.Command) *cephFlags, args ...string) (ceph.ConnOptions, error) {
	t.Helper()
	root := newRootCommand()
	var got ceph.ConnOptions
	cmd := &cobra.Command{Use: "probe", RunE: func(*cobra.Command, []string) error { return nil }}
	f := register(cmd)
	cmd.RunE = func(*cobra.Command, []string) (err error) {
		got, err = f.options()
		return err
	}
	root.AddCommand(cmd)
	root.SetArgs(append([]string{"--config", writeConfig(t, config), "probe"}, args...))
	return got, root.Execute()
}

// TestCephFlagResolution: rbd's names, the two-site names and the old
// names resolve to one cluster and identity, by rbd's rules.
func TestCephFlagResolution(t *testing.T) {
	const cfg = `
ceph:
  source: {conf: /cfg/src.conf, id: cfgsrc, keyring: /cfg/src.keyring}
  backup: {conf: /cfg/bak.conf, id: cfgbak, keyring: /cfg/bak.keyring}
`
	onSite := func(site string) func(*cobra.Command) *cephFlags {
		return func(c *cobra.Command) *cephFlags {
			f := &cephFlags{site: site}
			f.register(c.Flags())
			return f
		}
	}
	second := func(site string, fromConfig bool) func(*cobra.Command) *cephFlags {
		return func(c *cobra.Command) *cephFlags {
			f := &cephFlags{site: site}
			f.registerSite(c.Flags(), fromConfig, "")
			f.deprecated("to-conf", optConf)
			return f
		}
	}
	for _, c := range []struct {
		name     string
		config   string
		register func(*cobra.Command) *cephFlags
		args     []string
		want     ceph.ConnOptions
		err      string // a part of the usage error expected
	}{
		{name: "nothing: librados defaults", register: onSite(""), want: ceph.ConnOptions{}},
		{name: "config: source section", config: cfg, register: onSite("source"),
			want: ceph.ConnOptions{Conf: "/cfg/src.conf", ID: "cfgsrc", Keyring: "/cfg/src.keyring"}},
		{name: "config: backup section", config: cfg, register: onSite("backup"),
			want: ceph.ConnOptions{Conf: "/cfg/bak.conf", ID: "cfgbak", Keyring: "/cfg/bak.keyring"}},
		{name: "no site reads the source section", config: cfg, register: onSite(""),
			want: ceph.ConnOptions{Conf: "/cfg/src.conf", ID: "cfgsrc", Keyring: "/cfg/src.keyring"}},
		{name: "flags win, per option", config: cfg, register: onSite("backup"), args: []string{"-c", "/x.conf", "-k", "/x.keyring"},
			want: ceph.ConnOptions{Conf: "/x.conf", ID: "cfgbak", Keyring: "/x.keyring"}},
		{name: "two-site names are the same cluster", config: cfg, register: onSite("source"),
			args: []string{"--source-conf", "/s.conf", "--source-id", "s", "--source-keyring", "/s.keyring"},
			want: ceph.ConnOptions{Conf: "/s.conf", ID: "s", Keyring: "/s.keyring"}},
		{name: "-c and --source-conf agreeing", register: onSite("source"), args: []string{"-c", "/s.conf", "--source-conf", "/s.conf"},
			want: ceph.ConnOptions{Conf: "/s.conf"}},
		{name: "-c and --backup-conf disagreeing", register: onSite("backup"), args: []string{"-c", "/a.conf", "--backup-conf", "/b.conf"},
			err: `--conf "/a.conf" and --backup-conf "/b.conf" name two different confs`},
		{name: "--user is --id", register: onSite(""), args: []string{"--user", "ferry"}, want: ceph.ConnOptions{ID: "ferry"}},
		{name: "--name client.X is --id X", register: onSite(""), args: []string{"-n", "client.ferry", "--id", "ferry"}, want: ceph.ConnOptions{ID: "ferry"}},
		{name: "--name without client.", register: onSite(""), args: []string{"--name", "osd.1"}, err: "give client.ID"},
		{name: "--id and --user disagreeing", register: onSite(""), args: []string{"--id", "a", "--user", "b"}, err: "two different ids"},
		{name: "--cluster: its conf, ceph's keyring paths, the config's id", config: cfg, register: onSite("source"),
			args: []string{"--cluster", "dr"}, want: ceph.ConnOptions{Conf: "/etc/ceph/dr.conf", ID: "cfgsrc", Cluster: "dr"}},
		{name: "--cluster with -c and -k", config: cfg, register: onSite(""), args: []string{"--cluster", "dr", "-c", "/x.conf", "-k", "/x.keyring", "--id", "me"},
			want: ceph.ConnOptions{Conf: "/x.conf", ID: "me", Keyring: "/x.keyring", Cluster: "dr"}},
		{name: "--backup-cluster", register: onSite("backup"), args: []string{"--backup-cluster", "bak"},
			want: ceph.ConnOptions{Conf: "/etc/ceph/bak.conf", Cluster: "bak"}},
		{name: "--cluster with a path", register: onSite(""), args: []string{"--cluster", "/etc/ceph/dr.conf"}, err: "give a cluster's name"},
		{name: "second cluster from the config", config: cfg, register: second("backup", true),
			want: ceph.ConnOptions{Conf: "/cfg/bak.conf", ID: "cfgbak", Keyring: "/cfg/bak.keyring"}},
		{name: "second cluster never from the config unless asked", config: cfg, register: second("source", false), want: ceph.ConnOptions{}},
		{name: "second cluster by name", register: second("source", false), args: []string{"--source-cluster", "primary", "--source-id", "ferry"},
			want: ceph.ConnOptions{Conf: "/etc/ceph/primary.conf", ID: "ferry", Cluster: "primary"}},
		{name: "old name still works", register: second("source", false), args: []string{"--to-conf", "/p.conf"},
			want: ceph.ConnOptions{Conf: "/p.conf"}},
		{name: "old and new names disagreeing", register: second("source", false), args: []string{"--to-conf", "/p.conf", "--source-conf", "/q.conf"},
			err: "two different confs"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := resolveCeph(t, c.config, c.register, c.args...)
			if c.err != "" {
				var coded *codedError
				if err == nil || !strings.Contains(err.Error(), c.err) || !errors.As(err, &coded) || coded.code != exitUsage {
					t.Fatalf("err = %v, want a usage error with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}
