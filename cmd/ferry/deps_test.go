package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The shipped binary links no test code: package testing, the Ceph test bed
// and the packages of test helpers stay in test binaries.
func TestBinaryLinksNoTestCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-tags", "pacific", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, p := range []string{"testing", "github.com/ferry-dr/ferry/internal/testbed",
		"github.com/ferry-dr/ferry/internal/testutil", "github.com/ferry-dr/ferry/internal/ceph/cephtest",
		"github.com/ferry-dr/ferry/internal/bus/bustest"} {
		if slices.Contains(deps, p) {
			t.Errorf("ferry links %s", p)
		}
	}
}
