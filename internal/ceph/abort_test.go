package ceph

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

const envAbortChild = "FERRY_TEST_ABORT_CHILD"

// abortChild is the test binary run again by TestAbortPrintsStack: it
// aborts in C the way librbd does on an uncaught C++ exception.
func abortChild() {
	if err := printAbortStacks(); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(3)
	}
	abortForTest()
}

// An abort() in C code prints the aborting thread's stack (libc's abort
// among its frames: shared libraries' symbols are named), and the process
// still dies of SIGABRT.
func TestAbortPrintsStack(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	cmd.Env = append(os.Environ(), envAbortChild+"=1", "GOTRACEBACK=single")
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != -1 || !strings.Contains(ee.String(), "aborted") {
		t.Fatalf("child ended with %v, want death by SIGABRT; output:\n%s", err, out)
	}
	for _, want := range []string{"aborted inside C or C++ code", "(abort+"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("child's output lacks %q:\n%s", want, out)
		}
	}
}
