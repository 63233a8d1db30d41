package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/ferry-dr/ferry/internal/retention"
)

// Rules turns the retention section into the rules that choose each
// image's policy. A configuration that loaded has valid ones.
func (r Retention) Rules() (retention.Rules, error) {
	var rules retention.Rules
	var err error
	if r.Default != "" {
		if rules.Default, err = retention.ParsePolicy(r.Default); err != nil {
			return rules, fmt.Errorf("retention.default: %w", err)
		}
	}
	for _, p := range r.Pools {
		pol, err := retention.ParsePolicy(p.Value)
		if err != nil {
			return rules, fmt.Errorf("retention.pools.%s: %w", p.Name, err)
		}
		if rules.Pools == nil {
			rules.Pools = map[string]retention.Policy{}
		}
		rules.Pools[p.Name] = pol
	}
	for _, p := range r.Images {
		pol, err := retention.ParsePolicy(p.Value)
		if err != nil {
			return rules, fmt.Errorf("retention.images.%s: %w", p.Name, err)
		}
		rules.Images = append(rules.Images, retention.ImageRule{Pattern: p.Name, Policy: pol})
	}
	return rules, nil
}

// Durations reads a Pairs section of intervals (agent.schedules,
// agent.policies). A configuration that loaded has valid ones.
func (ps Pairs) Durations() (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for _, p := range ps {
		d, err := parseInterval(p.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name, err)
		}
		out[p.Name] = d
	}
	return out, nil
}

func parseInterval(text string) (time.Duration, error) {
	d, err := time.ParseDuration(text)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q: want a positive interval, e.g. 1h or 24h", text)
	}
	return d, nil
}

// validateDaemons checks the sections of the daemons' schedules and servers.
func (l *Loaded) validateDaemons(bad func(key, format string, args ...any)) {
	// A pair's problem names the pair's line; from the environment, the variable.
	badPair := func(section string, p Pair, err error) {
		key := section + "." + p.Name
		if _, ok := l.origins[key]; !ok {
			key = section
		}
		bad(key, "%v", err)
	}
	r := l.Retention
	if r.Interval < 0 {
		bad("retention.interval", "%s: want a positive interval, e.g. 1h, or 0 for none", r.Interval)
	}
	if r.Default != "" {
		if _, err := retention.ParsePolicy(r.Default); err != nil {
			bad("retention.default", "%v", err)
		}
	}
	for _, p := range r.Pools {
		if strings.ContainsAny(p.Name, "/@*?[") {
			badPair("retention.pools", p, fmt.Errorf("%q is not a pool name; an image pattern goes under retention.images", p.Name))
		} else if _, err := retention.ParsePolicy(p.Value); err != nil {
			badPair("retention.pools", p, err)
		}
	}
	for _, p := range r.Images {
		err := retention.CheckPattern(p.Name)
		if err == nil {
			_, err = retention.ParsePolicy(p.Value)
		}
		if err != nil {
			badPair("retention.images", p, err)
		}
	}
	if r.Interval > 0 && r.Default == "" && len(r.Pools) == 0 && len(r.Images) == 0 {
		bad("retention.interval", "%s, but no policy: set retention.default (e.g. latest3,days7,weeks4,months12), pools or images, or leave the interval out", r.Interval)
	}

	for _, section := range []struct {
		key   string
		pairs Pairs
	}{{"agent.schedules", l.Agent.Schedules}, {"agent.policies", l.Agent.Policies}} {
		for _, p := range section.pairs {
			if _, err := parseInterval(p.Value); err != nil {
				badPair(section.key, p, err)
			}
		}
	}
	if l.Agent.PolicyRefresh <= 0 {
		bad("agent.policy_refresh", "%s: want a positive duration, e.g. 5m", l.Agent.PolicyRefresh)
	}

	ns := l.NATSServer
	if ns.ServerConfig != "" {
		for _, key := range []string{"nats_server.listen", "nats_server.domain", "nats_server.leafnode_listen", "nats_server.leafnode_remotes", "nats_server.leafnode_no_advertise"} {
			if l.origins[key] != "" {
				bad(key, "set together with nats_server.server_config: set it in that file instead (the file says everything when it is given)")
			}
		}
		return
	}
	checkHostPort(bad, "nats_server.listen", ns.Listen, false)
	checkHostPort(bad, "nats_server.leafnode_listen", ns.LeafnodeListen, true)
	if strings.ContainsAny(ns.Domain, " .*>\t") {
		bad("nats_server.domain", "%q: a JetStream domain cannot contain spaces, '.', '*' or '>'", ns.Domain)
	}
	for _, u := range strings.Split(ns.LeafnodeRemotes, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		if p, err := url.Parse(u); err != nil || p.Host == "" || !oneOf(p.Scheme, "nats-leaf", "nats", "tls", "ws", "wss") {
			bad("nats_server.leafnode_remotes", "%q is not a leafnode URL (want nats-leaf://HOST:PORT)", u)
		}
	}
}
