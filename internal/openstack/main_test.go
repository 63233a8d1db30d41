package openstack_test

import (
	"context"
	"flag"
	"fmt"
	"github.com/ferry-dr/ferry/internal/testutil"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/openstack"
	"github.com/ferry-dr/ferry/internal/openstack/cindertest"
	"github.com/ferry-dr/ferry/internal/state"
)

// The tests that talk to OpenStack run against a real Cinder (noauth) and,
// for authentication, a real Keystone with a second Cinder API that checks
// its tokens. TestMain starts them once for the package; if they cannot
// start, every test fails with the reason.
var (
	cinder   *cindertest.Cinder
	keystone *cindertest.Keystone
)

// A hex project id, as Keystone makes them (noauth takes any).
const noauthProject = "f3771cd0a0ad4e2c9b1c5a1e9dc3b7a1"

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "ferry-openstack-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	t0 := time.Now()
	var wg sync.WaitGroup
	var cErr, kErr error
	for _, d := range []string{"cinder", "keystone"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	wg.Go(func() { cinder, cErr = cindertest.Start(ctx, filepath.Join(dir, "cinder")) })
	wg.Go(func() { keystone, kErr = cindertest.StartKeystone(ctx, filepath.Join(dir, "keystone")) })
	wg.Wait()
	if cinder != nil {
		defer cinder.Stop()
	}
	if keystone != nil {
		defer keystone.Stop()
	}
	var api *cindertest.Process
	if cErr == nil && kErr == nil {
		api, kErr = cinder.StartKeystoneAPI(ctx, keystone)
		defer api.Stop()
	}
	if cErr != nil || kErr != nil {
		fmt.Fprintf(os.Stderr, "openstack tests: cannot start the OpenStack services (kept in %s):\ncinder: %v\nkeystone: %v\n", dir, cErr, kErr)
		return 2
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "openstack tests: cinder and keystone up in %.1fs under %s\n", time.Since(t0).Seconds(), dir)
	}
	code := m.Run()
	if code == 0 {
		os.RemoveAll(dir)
	} else {
		fmt.Fprintf(os.Stderr, "openstack tests: logs kept in %s\n", dir)
	}
	return code
}

// noauthClients connects to the noauth Cinder as project.
func noauthClients(t testing.TB, project string) *openstack.Clients {
	t.Helper()
	c, err := openstack.Connect(context.Background(), openstack.Config{NoAuthEndpoint: cinder.URL, NoAuthProject: project})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newVolume(t testing.TB, c *openstack.Clients, name string, md map[string]string) string {
	t.Helper()
	id, err := cindertest.CreateVolume(context.Background(), c.Volume, name, md)
	if err != nil {
		t.Fatalf("%v (cinder log: %s)", err, cinder.Log())
	}
	return id
}

func metadataOf(t testing.TB, md *openstack.Metadata, id string) map[string]string {
	t.Helper()
	got, err := md.Get(context.Background(), openstack.Target{Kind: openstack.Volume, ID: id})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// stateBucket starts an in-process JetStream server with both sites'
// streams and returns its connection and the backup site's state bucket.
func stateBucket(t testing.TB) (*bus.Conn, *state.Book) {
	t.Helper()
	conn := bustest.Conn(t)
	book, err := state.Open(context.Background(), conn.Backup)
	if err != nil {
		t.Fatal(err)
	}
	return conn, book
}

func imageState(image string, status ferry.Status) *ferry.ImageState {
	return &ferry.ImageState{Image: ferry.ImageSpec{Pool: "volumes", Image: image}, Status: status, LastAttempt: time.Now().UTC()}
}

// waitFor polls cond until it holds, or fails after a minute with what the
// last look saw.
func waitFor(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	testutil.CheckFor(t, time.Minute, 100*time.Millisecond, func() error {
		if ok, saw := cond(); !ok {
			return fmt.Errorf("%s: saw %s", what, saw)
		}
		return nil
	})
}
