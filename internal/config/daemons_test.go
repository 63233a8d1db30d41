package config

import (
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/ferry"
)

// The daemons' sections load into what the daemons use: retention rules,
// agent schedules, the server's settings, in file order.
func TestDaemonSectionsLoad(t *testing.T) {
	path := writeFile(t, `
retention:
  interval: 1h
  default: latest3,days7
  pools:
    volumes-gold: latest24,months12
  images:
    volumes-gold/db-*: hours48
    "*/scratch-*": latest1
agent:
  schedules:
    web-1: 1h
    9b2c6a1e-0000-4000-8000-000000000001: 15m
  openstack: true
  policies: {daily: 24h}
nats_server:
  listen: 0.0.0.0:4222
  domain: backup
  leafnode_listen: :7422
  leafnode_remotes: nats-leaf://a:7422, nats-leaf://b:7422
`)
	l, err := Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := l.Retention.Rules()
	if err != nil {
		t.Fatal(err)
	}
	for image, want := range map[string]string{
		"volumes-gold/db-1": "hours48 by image volumes-gold/db-*",
		"volumes-gold/web":  "latest24,months12 by pool volumes-gold",
		"volumes/scratch-2": "latest1 by image */scratch-*",
		"volumes/anything":  "latest3,days7 by default",
	} {
		spec, _ := ferry.ParseImageSpec(image)
		p, rule, _ := rules.For(spec)
		if got := p.String() + " by " + rule; got != want {
			t.Errorf("%s: %s, want %s", image, got, want)
		}
	}
	if l.Retention.Interval != time.Hour || !l.Agent.OpenStack || l.NATSServer.Domain != "backup" {
		t.Errorf("loaded %+v", l.Config)
	}
	if got := l.Agent.Schedules.String(); got != "web-1=1h;9b2c6a1e-0000-4000-8000-000000000001=15m" {
		t.Errorf("agent.schedules %q (file order kept?)", got)
	}
	if o := l.Origin("agent.schedules.web-1"); o != path+":12" {
		t.Errorf("origin of agent.schedules.web-1: %q", o)
	}
	// The environment sets a whole section in one variable.
	l, err = Load(path, env(map[string]string{"FERRY_RETENTION_POOLS": "volumes=latest7,days30;images=latest2"}))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := l.Value("retention.pools"); got != "volumes=latest7,days30;images=latest2" || l.Origin("retention.pools") != "$FERRY_RETENTION_POOLS" {
		t.Errorf("retention.pools from the environment: %q from %q", got, l.Origin("retention.pools"))
	}
}

// A bad policy, pattern, interval or server setting is reported with its
// key path and line, and why.
func TestDaemonSectionsValidate(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		vars       map[string]string
		want       []string
	}{
		{"bad default", "retention:\n  default: latest3,fortnights2\n", nil,
			[]string{":2: retention.default: retention policy \"latest3,fortnights2\": unknown category \"fortnights\""}},
		{"bad pool policy", "retention:\n  pools:\n    volumes: latest0\n", nil,
			[]string{":3: retention.pools.volumes: retention policy \"latest0\": count in \"latest0\" must be between 1 and"}},
		{"pattern as pool", "retention:\n  pools:\n    volumes/db-*: latest3\n", nil,
			[]string{":3: retention.pools.volumes/db-*: \"volumes/db-*\" is not a pool name; an image pattern goes under retention.images"}},
		{"pool as pattern", "retention:\n  images:\n    volumes: latest3\n", nil,
			[]string{":3: retention.images.volumes: \"volumes\": want POOL/IMAGE"}},
		{"bad glob", "retention:\n  images:\n    volumes/db-[: latest3\n", nil,
			[]string{":3: retention.images.volumes/db-[: \"volumes/db-[\": bad wildcard pattern"}},
		{"empty policy", "retention:\n  images:\n    volumes/db:\n", nil,
			[]string{":3: retention.images.volumes/db: want one value after the colon"}},
		{"list for pairs", "retention:\n  pools: [volumes]\n", nil,
			[]string{":2: retention.pools: want a section of NAME: VALUE lines"}},
		{"interval without policy", "retention:\n  interval: 1h\n", nil,
			[]string{":2: retention.interval: 1h0m0s, but no policy"}},
		{"negative interval", "retention:\n  interval: -1h\n  default: latest1\n", nil,
			[]string{":2: retention.interval: -1h0m0s: want a positive interval"}},
		{"bad schedule", "agent:\n  schedules:\n    web-1: hourly\n    db-1: 0s\n", nil,
			[]string{":3: agent.schedules.web-1: \"hourly\": want a positive interval", ":4: agent.schedules.db-1: \"0s\": want a positive interval"}},
		{"bad policy interval from env", "", map[string]string{"FERRY_AGENT_POLICIES": "daily=1d"},
			[]string{"$FERRY_AGENT_POLICIES: agent.policies: \"1d\": want a positive interval"}},
		{"bad boolean", "agent:\n  openstack: yes please\n", nil,
			[]string{":2: agent.openstack: \"yes please\" is not a boolean"}},
		{"server config and listen", "nats_server:\n  server_config: /etc/ferry/backup-nats.conf\n  listen: 0.0.0.0:4222\n", nil,
			[]string{":3: nats_server.listen: set together with nats_server.server_config"}},
		{"bad listen", "nats_server:\n  listen: 4222\n", nil,
			[]string{":2: nats_server.listen: \"4222\": want HOST:PORT"}},
		{"bad remote", "nats_server:\n  leafnode_remotes: http://x:7422\n", nil,
			[]string{":2: nats_server.leafnode_remotes: \"http://x:7422\" is not a leafnode URL"}},
		{"bad domain", "nats_server:\n  domain: a.b\n", nil,
			[]string{":2: nats_server.domain: \"a.b\": a JetStream domain cannot contain"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := ""
			if c.yaml != "" {
				path = writeFile(t, c.yaml)
			}
			_, err := Load(path, env(c.vars))
			ps := problems(t, err)
			if len(ps) != len(c.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(c.want), err)
			}
			for i, w := range c.want {
				if got := strings.TrimPrefix(ps[i].String(), path); !strings.HasPrefix(got, w) {
					t.Errorf("problem %d: %q, want prefix %q", i, got, w)
				}
			}
		})
	}
}

// A broken retention section does not keep the hook from running: the
// lenient load drops the whole section, and only it.
func TestLoadLenientDropsBadPairsSection(t *testing.T) {
	path := writeFile(t, "retention:\n  pools:\n    volumes: latest3\n    images: nonsense\nlog:\n  level: debug\n")
	l, ps := LoadLenient(path, nil)
	if len(ps) != 1 || ps[0].Key != "retention.pools.images" {
		t.Fatalf("problems %v", ps)
	}
	if len(l.Retention.Pools) != 0 || l.Origin("retention.pools") != "" || l.Origin("retention.pools.volumes") != "" || l.Log.Level != "debug" {
		t.Fatalf("lenient load kept %v (origin %q), log level %s", l.Retention.Pools, l.Origin("retention.pools"), l.Log.Level)
	}
}
