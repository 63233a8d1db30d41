package ceph

/*
#include <execinfo.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static const char ferry_abort_banner[] =
	"ferry: aborted inside C or C++ code (librados/librbd?); the aborting thread's stack:\n";

static void ferry_abort_handler(int sig) {
	void *frames[64];
	int n = backtrace(frames, 64);
	(void)!write(2, ferry_abort_banner, sizeof(ferry_abort_banner) - 1);
	backtrace_symbols_fd(frames, n, 2);
	// Die of the same signal, so the exit status still says "aborted".
	signal(sig, SIG_DFL);
	raise(sig);
}

static int ferry_install_abort_handler(void) {
	// backtrace loads libgcc on its first call, which is not safe inside a
	// signal handler: call it once here.
	void *warm[1];
	backtrace(warm, 1);
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = ferry_abort_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_ONSTACK;
	return sigaction(SIGABRT, &sa, NULL);
}

static void ferry_abort(void) { abort(); }
*/
import "C"

import (
	"fmt"
	"sync"
)

// printAbortStacks makes an abort() in C or C++ code (librados and librbd
// call it on a failed assertion or an uncaught exception, such as
// "terminate called after throwing an instance of 'std::system_error'")
// print the aborting thread's stack to stderr before the process dies.
// Without it Go prints nothing for a signal raised on a thread of librados'
// own, and the only trace of such a crash is "signal: aborted". Connect
// installs it once, so every process that can be inside librados has it.
var printAbortStacks = sync.OnceValue(func() error {
	if ret, err := C.ferry_install_abort_handler(); ret != 0 {
		return fmt.Errorf("ceph: install the SIGABRT handler that prints librados' stack on an abort: %v", err)
	}
	return nil
})

// abortForTest calls C's abort(), for the test of printAbortStacks.
func abortForTest() { C.ferry_abort() }
