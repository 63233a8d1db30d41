package main

import (
	"strings"
	"testing"
)

// TestCommandLineRefusesBadNames: names given on the command line pass the
// same check as names from the bus, before anything connects.
func TestCommandLineRefusesBadNames(t *testing.T) {
	t.Setenv("FERRY_CONFIG", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"backup", "rbd/vm\x1b[2J"}, `image name "vm\x1b[2J": contains the non-printable character U+001B`},
		{[]string{"export-diff", "--from-snap", "s\x00", "rbd/vm@s2", "-"}, `--from-snap: snapshot name "s\x00"`},
		{[]string{"restore", "rbd/vm@s2", "--to", "rbd/new", "--from-snap", "s\n"}, `--from-snap: snapshot name "s\n"`},
		{[]string{"restore", "rbd/vm@s2", "--to", "source:rbd/new\t"}, `image name "new\t"`},
		{[]string{"verify", "rbd/" + strings.Repeat("v", 256) + "@s"}, `256 bytes long`},
	} {
		root := newRootCommand()
		root.SetArgs(tc.args)
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ferry %q: %v, want an error saying %s", tc.args, err, tc.want)
		}
	}
}
