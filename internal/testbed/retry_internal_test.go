package testbed

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// A site whose mon port is taken between picking and binding is started again on other ports.
func TestUpRetriesWhenPortTaken(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "ceph-site.sh")
	if err := writeScript(script); err != nil {
		t.Fatal(err)
	}
	p, err := pickPorts(nil)
	if err != nil {
		t.Fatal(err)
	}
	// Hold the mon's v1 port (MON+1), as another process could.
	l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(p.Mon+1))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	s := newSite("retry", filepath.Join(dir, "retry"), script)
	picks := 0
	pick := func() (ports, error) {
		picks++
		if picks == 1 {
			return p, nil
		}
		return pickPorts([]ports{p})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err = s.up(ctx, pick)
	defer s.down()
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	if picks != 2 {
		t.Fatalf("ports picked %d times, want 2", picks)
	}
	if _, err := s.RbdErr("ls", s.Pool); err != nil {
		t.Fatal(err)
	}
}
