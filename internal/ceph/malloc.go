package ceph

/*
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

// ferry_strand_free_memory leaves n*size bytes free inside glibc's heap, where
// only malloc_trim can give them back: it touches n blocks, keeps one more
// above them, and frees the n. It returns the kept block.
static void *ferry_strand_free_memory(int n, size_t size) {
	void **blocks = malloc(n * sizeof(void *));
	for (int i = 0; i < n; i++) {
		blocks[i] = malloc(size);
		memset(blocks[i], 1, size);
	}
	void *keep = malloc(size);
	for (int i = 0; i < n; i++) {
		free(blocks[i]);
	}
	free(blocks);
	return keep;
}
*/
import "C"

import (
	"context"
	"errors"
	"time"
)

// mallocArenas caps glibc's heap arenas. librados and librbd run dozens of
// threads, and glibc gives each busy thread an arena of its own (up to 8
// per core), each keeping the 4 MiB blocks freed in it for reuse. Two
// arenas lowered the consumer's resident size at the same speed
// (docs/performance.md).
const mallocArenas = 2

// LimitMallocArenas applies mallocArenas. Call it once at start, before any
// Ceph connection starts its threads.
func LimitMallocArenas() error {
	if C.mallopt(C.M_ARENA_MAX, mallocArenas) != 1 {
		return errors.New("mallopt(M_ARENA_MAX) failed")
	}
	return nil
}

// ReturnFreeMemory gives the memory that glibc holds free back to the
// kernel (malloc_trim) every second until ctx ends; every command runs it.
// How many freed object-sized blocks the arenas keep at once varies from run
// to run; trimming lowered `ferry backup`'s peaks at the same speed
// (docs/performance.md).
func ReturnFreeMemory(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			C.malloc_trim(0)
		}
	}
}

// strandFreeMemory leaves n blocks of size bytes free inside glibc's heap
// (for the test of ReturnFreeMemory); call the returned func when done.
func strandFreeMemory(n int, size int) (release func()) {
	keep := C.ferry_strand_free_memory(C.int(n), C.size_t(size))
	return func() { C.free(keep) }
}
