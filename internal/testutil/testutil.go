// Package testutil has the small helpers that Ferry's tests share: waiting
// for a condition, a free port, a log buffer. It is for tests only; nothing
// that ships imports it.
package testutil

import (
	"bytes"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// CheckFor calls f every interval until it returns nil, and fails t with
// f's last error if that has not happened within totalWait (the shape of
// nats-server's checkFor). f says in its error what it saw.
func CheckFor(t testing.TB, totalWait, interval time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(totalWait)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still not so after %v: %v", totalWait, err)
		}
		time.Sleep(interval)
	}
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// LogBuffer is a log sink that goroutines under test and the test share.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Lines returns the lines written so far.
func (l *LogBuffer) Lines() []string {
	return strings.Split(strings.TrimSpace(l.String()), "\n")
}

// Lazy returns a function that gives what make makes: made once, by the
// first test that asks; every test that asks fails if it could not be made.
// For what only some tests need (a built binary, a service to start).
func Lazy[T any](make func() (T, error)) func(testing.TB) T {
	var (
		once sync.Once
		v    T
		err  error
	)
	return func(t testing.TB) T {
		t.Helper()
		once.Do(func() { v, err = make() })
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// RandomBytes returns n bytes drawn from r, none of them zero: data that
// never reads as a hole, from a seed a failing test can be run again with.
func RandomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32() | 1)
	}
	return b
}

// UncommentedConfig writes the example configuration at path with its keys
// uncommented, as the file tells an operator to (the first '#' of each line
// below its header, which ends at the first empty line), into a test
// directory, and returns the new file's path.
func UncommentedConfig(t testing.TB, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	for i, header := 0, true; i < len(lines); i++ {
		if header {
			header = lines[i] != ""
			continue
		}
		lines[i] = strings.TrimPrefix(lines[i], "#")
	}
	out := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(out, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}
