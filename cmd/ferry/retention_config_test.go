package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestRetentionApplyNeedsAPolicy: retention apply takes one image or
// --all, and a policy from --policy or the configuration; it says which
// before it connects to anything.
func TestRetentionApplyNeedsAPolicy(t *testing.T) {
	noPolicy := writeConfig(t, "log:\n  level: info\n")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"retention", "apply", "--config", noPolicy}, "give one POOL/IMAGE, or --all"},
		{[]string{"retention", "apply", "--config", noPolicy, "--all", "rbd/x"}, "give one POOL/IMAGE, or --all"},
		{[]string{"retention", "apply", "--config", noPolicy, "--all"}, "no retention policy: give --policy, or set the configuration's retention section"},
		{[]string{"retention", "apply", "--config", noPolicy, "--policy", "days0", "rbd/x"}, "--policy: retention policy \"days0\""},
	} {
		root := newRootCommand()
		root.SetArgs(c.args)
		if err := root.Execute(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}

// TestConfigCheckNamesBadPolicy: config check names a bad retention
// policy by its full key and line, and a consumer does not start with it.
func TestConfigCheckNamesBadPolicy(t *testing.T) {
	path := writeConfig(t, "retention:\n  interval: 1h\n  pools:\n    volumes: latest3,fortnights2\n")
	var out bytes.Buffer
	root := newRootCommand()
	root.SetOut(&out)
	root.SetArgs([]string{"config", "check", "--config", path})
	want := path + `:4: retention.pools.volumes: retention policy "latest3,fortnights2": unknown category "fortnights"`
	if err := root.Execute(); err == nil || !strings.HasPrefix(out.String(), want) {
		t.Fatalf("config check: %v\n%s\nwant %s", err, out.String(), want)
	}
	root = newRootCommand()
	root.SetArgs([]string{"consumer", "run", "--config", path})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "retention.pools.volumes") {
		t.Fatalf("consumer run with a bad policy: %v", err)
	}
}
