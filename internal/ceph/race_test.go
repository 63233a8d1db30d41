package ceph

import (
	"context"
	"errors"
	"fmt"
	"github.com/ferry-dr/ferry/internal/testutil"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/rbddiff"
	"github.com/ferry-dr/ferry/internal/testbed"
)

const envRaceChild = "FERRY_TEST_RACE_CHILD"

// raceDuration is how long the child opens and closes images. Without
// librbdRaceSettings the child aborted or hung in 4 of 10 runs here.
const raceDuration = 20 * time.Second

// Images opened, read briefly and closed, many at a time while exports and
// imports run and every CPU is kept busy (so librados' threads are often
// preempted), must neither crash the process nor hang it: the race that
// librbdRaceSettings work around. The work runs in a child process, so an
// abort or a crash fails this test with the child's output instead of
// killing the whole test binary, and a hang is caught by a deadline.
func TestOpenCloseRace(t *testing.T) {
	if os.Getenv(envRaceChild) != "" {
		openCloseRace(t, raceDuration)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), raceDuration+60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run", "^TestOpenCloseRace$", "-test.count", "1", "-test.v")
	cmd.Env = append(os.Environ(), envRaceChild+"=1", testbed.EnvTestbed+"="+testbed.Shared(t).Dir, "GOTRACEBACK=single")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the child still ran %v after it should have ended (an open that never returns is how the race hangs); output:\n%s",
			raceDuration+60*time.Second, headTail(out, 2000, 4000))
	}
	if err != nil {
		t.Fatalf("the child failed (%v); output:\n%s", err, headTail(out, 2000, 6000))
	}
	t.Logf("child: %s", lastLine(out, "opened and closed"))
}

func openCloseRace(t *testing.T, d time.Duration) {
	_, backup := bedSites(t)
	r := rand.New(rand.NewPCG(7, 8))
	img := newImage(t, backup, "race", 8<<20)
	writeAt(t, backup, img, 0, randomBytes(r, 8<<20))
	snap(t, backup, img, "s1")
	ioctx, err := backup.ioctx(img.Pool)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()

	// Every CPU is kept busy by a process of its own (goroutines would
	// take the Go scheduler's threads instead), so librados' threads are
	// often preempted. timeout ends them, even if this process crashes.
	secs := fmt.Sprint(int(d.Seconds()) + 1)
	for range runtime.NumCPU() {
		spin := exec.Command("timeout", secs, "sh", "-c", "while :; do :; done")
		if err := spin.Start(); err != nil {
			t.Fatal(err)
		}
		defer spin.Wait()
	}
	var wg sync.WaitGroup
	var opens, imports atomic.Int64
	for range 12 {
		wg.Add(1)
		go func() { // open at the snapshot, read a little, close at once
			defer wg.Done()
			buf := cAlloc(4096)
			defer cFree(buf)
			for i := 0; ctx.Err() == nil; i++ {
				a, err := openAioReadOnly(ioctx, img.AtSnap("s1"))
				if err != nil {
					t.Error(err)
					return
				}
				var ops []*aioOp
				for k := range i % 3 {
					op, err := a.read(uint64(k)*4096, buf)
					if err != nil {
						t.Error(err)
						break
					}
					ops = append(ops, op)
				}
				for _, op := range ops {
					if err := op.wait(); err != nil {
						t.Error(err)
					}
				}
				if err := a.close(); err != nil {
					t.Error(err)
				}
				opens.Add(1)
			}
		}()
	}
	wg.Add(1)
	go func() { // full exports imported into new images on the same cluster
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			dst := img
			dst.Image = fmt.Sprintf("%s-copy%d", img.Image, i)
			if err := copyImage(backup, img.AtSnap("s1"), dst); err != nil {
				t.Error(err)
				return
			}
			imports.Add(1)
		}
	}()
	wg.Wait()
	if opens.Load() == 0 || imports.Load() == 0 {
		t.Fatalf("only %d opens and %d imports in %v: the race was not exercised", opens.Load(), imports.Load(), d)
	}
	fmt.Printf("opened and closed %s %d times, exported and imported it %d times in %v\n", img.AtSnap("s1"), opens.Load(), imports.Load(), d)
}

// copyImage makes dst (a new image) a copy of src through Export and Import,
// then removes it again.
func copyImage(c *Cluster, src, dst ferry.ImageSpec) error {
	if err := c.CreateImage(dst, 1<<20); err != nil {
		return err
	}
	pr, pw := io.Pipe()
	exported := make(chan error, 1)
	go func() {
		_, err := c.Export(context.Background(), ExportOptions{Image: src}, rbddiff.NewWriter(pw, rbddiff.V2), nil)
		pw.CloseWithError(err)
		exported <- err
	}()
	_, err := c.Import(context.Background(), dst, rbddiff.NewReader(pr), nil)
	pr.Close()
	err = errors.Join(err, <-exported)
	if src.Snap != "" {
		err = errors.Join(err, c.RemoveSnapshot(dst.AtSnap(src.Snap)))
	}
	return errors.Join(err, c.RemoveImage(dst))
}

// headTail shortens out to its first head and last tail bytes: a crashed
// child's output begins with the signal and ends with the stack that matters.
func headTail(out []byte, head, tail int) string {
	if len(out) <= head+tail {
		return string(out)
	}
	return string(out[:head]) + "\n[...]\n" + string(out[len(out)-tail:])
}

// lastLine is the last line of out that contains s.
func lastLine(out []byte, s string) string {
	lines := strings.Split(string(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], s) {
			return lines[i]
		}
	}
	return "(no line with " + s + ")"
}

// A connection runs one librados completion thread, not librados' default
// of two (librbdRaceSettings).
func TestOneCompletionThread(t *testing.T) {
	before := threadsNamed(t, "io_context_pool")
	c, err := Connect(siteConn(testbed.Shared(t).Backup))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A thread names itself once it runs, which on a busy machine can be a
	// while after Connect returned: count until the count holds still.
	n, stable := -1, time.Now()
	testutil.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if m := threadsNamed(t, "io_context_pool") - before; m != n {
			n, stable = m, time.Now()
		} else if n > 0 && time.Since(stable) > 500*time.Millisecond {
			return nil
		}
		return fmt.Errorf("%d new io_context_pool threads, not yet steady for 500 ms", n)
	})
	if n != 1 {
		t.Fatalf("a new connection started %d io_context_pool threads, want 1", n)
	}
}

// threadsNamed counts this process's threads called name.
func threadsNamed(t *testing.T, name string) int {
	t.Helper()
	comms, err := filepath.Glob("/proc/self/task/*/comm")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range comms {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread ended
		}
		if strings.TrimSpace(string(b)) == name {
			n++
		}
	}
	return n
}
