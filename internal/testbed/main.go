package testbed

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/testutil"
)

// EnvTestbed names a directory made by devenv.sh (make devenv) whose sites the tests reuse.
const EnvTestbed = "FERRY_TESTBED"

// mainRunning is set by Main. bed is the bed that the first call of Shared had; started is
// the same bed if Shared started it, for Main to stop.
var (
	mainRunning  bool
	bed, started *Bed
)

// Main is for TestMain. It runs the tests and, if one of them started a bed (see Shared), stops
// it and removes its directory, then exits with the tests' status. A package whose tests call
// Shared must have it: func TestMain(m *testing.M) { testbed.Main(m) }.
func Main(m *testing.M) {
	mainRunning = true
	code := m.Run()
	if started != nil {
		code = stop(started, code)
	}
	os.Exit(code)
}

// Shared returns the bed of this test binary, which the first call has: if FERRY_TESTBED names
// a directory made by devenv.sh (with source/ceph.conf and backup/ceph.conf) it reuses those
// sites and leaves them running; otherwise it starts a fresh pair in a temporary directory
// (5-15 s), which Main stops when the tests end. Tests that never call it need no Ceph. If the
// bed cannot be had, every test that asks for it fails with the reason: tests never skip.
func Shared(t testing.TB) *Bed {
	t.Helper()
	if !mainRunning {
		t.Fatal("testbed.Shared: no testbed.Main; add func TestMain(m *testing.M) { testbed.Main(m) } to this package")
	}
	return shared(t)
}

var shared = testutil.Lazy(have)

// have opens or starts the bed.
func have() (b *Bed, err error) {
	defer func() { bed = b }()
	if dir := os.Getenv(EnvTestbed); dir != "" {
		if b, err = Open(dir); err != nil {
			return nil, fmt.Errorf("%s=%s: %w", EnvTestbed, dir, err)
		}
		return b, nil
	}

	dir, err := os.MkdirTemp("", "ferry-testbed-")
	if err != nil {
		return nil, fmt.Errorf("testbed: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	t0 := time.Now()
	b, err = Start(ctx, dir)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("testbed: cannot start the Ceph test bed: %w\n"+
			"(daemon logs are kept in %s; is Ceph installed? see .ci/install-deps.sh)", err, dir)
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "testbed: source and backup sites ready in %.1fs under %s\n",
			time.Since(t0).Seconds(), dir)
	}
	started = b

	// Stop the daemons on Ctrl-C or kill as well. (On a crash or a test timeout the watcher
	// started by ceph-site.sh stops them.)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		b.Stop()
		os.RemoveAll(dir)
		os.Exit(2)
	}()
	return b, nil
}

// stop stops a bed that Start made and removes its directory, or keeps it after failed tests
// when FERRY_TESTBED_KEEP is set. It returns the exit status.
func stop(b *Bed, code int) int {
	dir := b.Dir
	signal.Reset(os.Interrupt, syscall.SIGTERM)
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

// Lazy is testutil.Lazy for what is made of the bed: clients of its sites, say.
func Lazy[T any](make func(*Bed) (T, error)) func(testing.TB) T {
	get := testutil.Lazy(func() (T, error) { return make(bed) })
	return func(t testing.TB) T {
		t.Helper()
		Shared(t) // sets bed, or fails t
		return get(t)
	}
}
