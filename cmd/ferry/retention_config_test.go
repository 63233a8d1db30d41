package main

import (
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
