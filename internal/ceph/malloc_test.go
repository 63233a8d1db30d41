package ceph

import (
	"context"
	"fmt"
	"github.com/ferry-dr/ferry/internal/testutil"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func residentBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	pages, err := strconv.ParseInt(strings.Fields(string(b))[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}

// ReturnFreeMemory gives back free memory that glibc would otherwise keep,
// and stops when its context ends.
func TestReturnFreeMemory(t *testing.T) {
	const stranded = 64 << 20
	release := strandFreeMemory(1024, stranded/1024) // 64 KiB blocks stay in the arenas
	defer release()
	before := residentBytes(t)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		ReturnFreeMemory(ctx)
		close(done)
	}()
	testutil.CheckFor(t, 5*time.Second, 100*time.Millisecond, func() error {
		if now := residentBytes(t); before-now < stranded/2 {
			return fmt.Errorf("resident memory went from %d to %d bytes; want %d bytes of stranded free memory given back", before, now, stranded)
		}
		return nil
	})
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("ReturnFreeMemory still running 5 s after its context ended")
	}
}
