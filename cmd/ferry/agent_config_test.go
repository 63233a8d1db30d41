package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/hooks"
	"github.com/ferry-dr/ferry/internal/config"
)

// TestAgentSchedulesFromConfig: without flags the agent takes its
// schedules (each domain with its own interval) and its policies from the
// configuration; flags replace them.
func TestAgentSchedulesFromConfig(t *testing.T) {
	path := writeConfig(t, "agent:\n  schedules:\n    web-1: 1h\n    db-1: 15m\n  policies:\n    daily: 24h\n    hourly: 1h\n")
	l, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name            string
		domains, pflags []string
		every           time.Duration
		want            []hooks.Schedule
		policies        map[string]time.Duration
	}{
		{"config", nil, nil, 0,
			[]hooks.Schedule{{Domain: "web-1", Every: time.Hour}, {Domain: "db-1", Every: 15 * time.Minute}},
			map[string]time.Duration{"daily": 24 * time.Hour, "hourly": time.Hour}},
		{"flags replace", []string{"mail"}, []string{"weekly=168h"}, 2 * time.Hour,
			[]hooks.Schedule{{Domain: "mail", Every: 2 * time.Hour}},
			map[string]time.Duration{"weekly": 168 * time.Hour}},
	} {
		s, p, err := agentSchedules(&l.Config, c.domains, c.every, c.pflags)
		if err != nil || !slices.Equal(s, c.want) || len(p) != len(c.policies) {
			t.Errorf("%s: %v %v %v, want %v %v", c.name, s, p, err, c.want, c.policies)
		}
		for k, v := range c.policies {
			if p[k] != v {
				t.Errorf("%s: policy %s = %s, want %s", c.name, k, p[k], v)
			}
		}
	}
	if _, _, err := agentSchedules(&l.Config, []string{"x"}, 0, nil); err == nil || !strings.Contains(err.Error(), "--domain needs --every") {
		t.Errorf("--domain without --every: %v", err)
	}

	// The command reads them: policies from the file need agent.openstack,
	// and it says so before it connects to anything.
	root := newRootCommand()
	root.SetArgs([]string{"agent", "run", "--config", path})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "agent.openstack and agent.policies") {
		t.Fatalf("agent run with policies but not openstack: %v", err)
	}
}
