package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/testutil"
	"github.com/ferry-dr/ferry/publisher"
	"github.com/spf13/cobra"
)

// probe is a command with the real flag structs, run through the real root
// command, so the test sees what publisher/consumer would get.
type probe struct {
	cf cephFlags
	nf natsFlags
	po publisherFlags
	df daemonFlags
	bw time.Duration
}

func runProbe(t *testing.T, site string, args ...string) (*probe, error) {
	t.Helper()
	root := newRootCommand()
	p := &probe{cf: cephFlags{site: site}}
	cmd := &cobra.Command{Use: "probe", RunE: func(*cobra.Command, []string) error { return nil }}
	p.cf.register(cmd.Flags())
	p.nf.register(cmd.Flags())
	p.po.register(cmd.Flags())
	p.df.register(cmd.Flags(), "consumer")
	cmd.Flags().DurationVar(&p.bw, "base-wait", defaults.Consumer.BaseWait, "")
	bindConfig(cmd.Flags(), "base-wait", "consumer.base_wait")
	root.AddCommand(cmd)
	root.SetArgs(append([]string{"probe"}, args...))
	return p, root.Execute()
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ferry.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFlagsWinOverEnvOverFile(t *testing.T) {
	path := writeConfig(t, `
ceph:
  source: {conf: /src.conf, id: src}
  backup: {conf: /bak.conf, id: bak, keyring: /bak.keyring}
nats: {url: "nats://file:4222", creds: /file.creds, backup_domain: filedom}
publisher: {chunk_size: 1MiB, compression_level: 3}
consumer: {base_wait: 2h, metrics_listen: "127.0.0.1:9999"}
log: {level: debug}
`)
	t.Setenv("FERRY_NATS_URL", "nats://env:4222")
	t.Setenv("FERRY_PUBLISHER_COMPRESSION_LEVEL", "8")
	t.Setenv("FERRY_CONFIG", "/nonexistent/ignored-because-flag-wins.yaml")
	p, err := runProbe(t, "backup", "--config", path, "--compression-level", "9", "--id", "flag", "--base-wait", "5m")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{
		"conf (file, backup section)": p.cf.conf, "id (flag)": p.cf.id, "keyring (file)": p.cf.keyring,
		"nats (env)": p.nf.url, "creds (file)": p.nf.creds, "backup domain (file)": p.nf.backupDomain,
		"chunk size (file)": p.po.chunkSize, "level (flag over env)": p.po.level,
		"base wait (flag)": p.bw, "metrics (file)": p.df.metricsListen, "log (file)": p.df.logLevel,
	}
	want := map[string]any{
		"conf (file, backup section)": "/bak.conf", "id (flag)": "flag", "keyring (file)": "/bak.keyring",
		"nats (env)": "nats://env:4222", "creds (file)": "/file.creds", "backup domain (file)": "filedom",
		"chunk size (file)": uint64(1 << 20), "level (flag over env)": 9,
		"base wait (flag)": 5 * time.Minute, "metrics (file)": "127.0.0.1:9999", "log (file)": "debug",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %v, want %v", k, got[k], w)
		}
	}

	// The source section is the default site; FERRY_CONFIG names the file.
	t.Setenv("FERRY_CONFIG", path)
	p, err = runProbe(t, "")
	if err != nil {
		t.Fatal(err)
	}
	if p.cf.conf != "/src.conf" || p.cf.id != "src" || p.cf.keyring != "" || p.po.level != 8 {
		t.Fatalf("source site: %+v %+v", p.cf, p.po)
	}
}

func TestNoConfigKeepsFlagDefaults(t *testing.T) {
	t.Setenv("FERRY_CONFIG", "")
	p, err := runProbe(t, "")
	if err != nil {
		t.Fatal(err)
	}
	if p.nf.url != "nats://127.0.0.1:4222" || p.po.chunkSize != publisher.DefaultChunkSize || p.po.level != 6 || p.bw != 30*time.Minute || p.df.metricsListen != "" {
		t.Fatalf("defaults: %+v %+v %v", p.nf, p.po, p.bw)
	}
}

func TestBrokenConfigStopsCommands(t *testing.T) {
	path := writeConfig(t, "nats:\n  url: nats://x:4222\n  tls: true\n")
	_, err := runProbe(t, "", "--config", path)
	if err == nil || !strings.Contains(err.Error(), path+":3: nats.tls: unknown key") {
		t.Fatalf("got %v", err)
	}
	// config check reads it itself and fails with a count (the lines go to stdout).
	var out bytes.Buffer
	root := newRootCommand()
	root.SetOut(&out)
	root.SetArgs([]string{"config", "check", "--config", path})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "1 problem") || !strings.HasPrefix(out.String(), path+":3: nats.tls: unknown key") {
		t.Fatalf("config check: %v\n%s", err, out.String())
	}
	out.Reset()
	root = newRootCommand()
	root.SetOut(&out)
	// The example is installed with every key commented out; uncommented
	// (the first '#' of each line below the header, as the file says), it
	// names /etc/ceph files this machine lacks, and check must say so.
	example := testutil.UncommentedConfig(t, filepath.Join("..", "..", "packaging", "ferry.yaml"))
	root.SetArgs([]string{"config", "check", "--config", example})
	if err := root.Execute(); err == nil || !regexp.MustCompile(regexp.QuoteMeta(example)+`:\d+: ceph.source.keyring: cannot read /etc/ceph/ceph.client.ferry.keyring`).MatchString(out.String()) {
		t.Fatalf("the example names /etc/ceph files this machine lacks; check must say so: %v\n%s", err, out.String())
	}
}

// TestConfigCheckHidesNATSPassword: config check lists nats.url and
// reports a bad one without the password or token in it.
func TestConfigCheckHidesNATSPassword(t *testing.T) {
	for _, c := range []struct{ url, want string }{
		{"nats://ferry:s3cret@nats.example:4222", "nats://REDACTED@nats.example:4222"},
		{"http://ferry:s3cret@nats.example", "is not a NATS URL"},
	} {
		t.Setenv("FERRY_NATS_URL", c.url)
		root := newRootCommand()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs([]string{"config", "check", "--config", writeConfig(t, "")})
		err := root.Execute()
		text := out.String()
		if err != nil {
			text += err.Error()
		}
		if strings.Contains(text, "s3cret") || !strings.Contains(text, c.want) {
			t.Errorf("config check with nats.url %s printed:\n%s\nwant %q and no password", c.url, text, c.want)
		}
	}
}
