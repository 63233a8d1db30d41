package testbed

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// EnvTestbed names a directory made by devenv.sh (make devenv) whose sites the tests reuse.
const EnvTestbed = "FERRY_TESTBED"

var shared *Bed

// Main is for TestMain. If FERRY_TESTBED names a directory made by devenv.sh (with
// source/ceph.conf and backup/ceph.conf) it reuses those sites and leaves them running;
// otherwise it starts a fresh pair in a temporary directory, runs the tests, stops the pair and
// removes the directory. Then it exits with the tests' status. If the test bed cannot be had it
// prints why and exits non-zero: tests never skip silently. Each setup runs
// once the bed is up (to connect clients, say); an error fails the run.
func Main(m *testing.M, setup ...func(*Bed) error) {
	os.Exit(run(m, setup))
}

// runTests runs the setups, then the tests.
func runTests(m *testing.M, b *Bed, setup []func(*Bed) error) int {
	for _, s := range setup {
		if err := s(b); err != nil {
			fmt.Fprintf(os.Stderr, "testbed: setup: %v\n", err)
			return 2
		}
	}
	return m.Run()
}

func run(m *testing.M, setup []func(*Bed) error) int {
	if !flag.Parsed() {
		flag.Parse() // for testing.Verbose
	}
	if dir := os.Getenv(EnvTestbed); dir != "" {
		b, err := Open(dir)
		if err != nil {
			fmt.Fprintf(os.Stderr, "testbed: %s=%s: %v\n", EnvTestbed, dir, err)
			return 2
		}
		shared = b
		return runTests(m, b, setup)
	}

	dir, err := os.MkdirTemp("", "ferry-testbed-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "testbed: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	t0 := time.Now()
	b, err := Start(ctx, dir)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "testbed: cannot start the Ceph test bed: %v\n"+
			"(daemon logs are kept in %s; is Ceph installed? see .ci/install-deps.sh)\n", err, dir)
		return 2
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "testbed: source and backup sites ready in %.1fs under %s\n",
			time.Since(t0).Seconds(), dir)
	}
	shared = b

	// Stop the daemons on Ctrl-C or kill as well. (On a crash or a test timeout the watcher
	// started by ceph-site.sh stops them.)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		if _, ok := <-sigs; ok {
			b.Stop()
			os.RemoveAll(dir)
			os.Exit(2)
		}
	}()

	code := runTests(m, b, setup)
	signal.Stop(sigs)
	close(sigs)
	if err := b.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "testbed: %v\n", err)
		if code == 0 {
			code = 2
		}
		return code
	}
	if code != 0 && os.Getenv("FERRY_TESTBED_KEEP") != "" {
		fmt.Fprintf(os.Stderr, "testbed: FERRY_TESTBED_KEEP is set: keeping %s\n", dir)
		return code
	}
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintf(os.Stderr, "testbed: %v\n", err)
	}
	return code
}

// Shared returns the bed that Main started or reused.
func Shared() *Bed {
	if shared == nil {
		panic("testbed.Shared: no test bed; call testbed.Main(m) from this package's TestMain")
	}
	return shared
}
