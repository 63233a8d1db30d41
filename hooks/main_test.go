package hooks

import (
	"context"
	"crypto/rand"
	"fmt"
	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dr/ferry/consumer"
	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/testbed"
	"github.com/ferry-dr/ferry/internal/virt"
	"github.com/ferry-dr/ferry/publisher"
	"github.com/nats-io/nats-server/v2/server"
)

// The hook tests run on real services: libvirt's test:/// driver (inside
// libvirt.so, no daemon), the two-site Ceph test bed (cephtest.Sites) and
// in-process NATS.
func TestMain(m *testing.M) {
	// The ferry processes the tests start take every option on their
	// command line: a ferry.yaml installed on this machine must not count.
	os.Setenv("FERRY_CONFIG", os.DevNull)
	testbed.Main(m)
}

var monAddr = regexp.MustCompile(`v1:([0-9.]+:[0-9]+)`)

// monitorOf returns host:port (msgr v1) of the source site's monitor.
var monitorOf = testbed.Lazy(func(bed *testbed.Bed) (string, error) {
	raw, err := os.ReadFile(bed.Source.Conf)
	if err != nil {
		return "", err
	}
	m := monAddr.FindSubmatch(raw)
	if m == nil {
		return "", fmt.Errorf("no v1 monitor address in %s", bed.Source.Conf)
	}
	return string(m[1]), nil
})

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil)).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newUUID(t testing.TB) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// openTestDriver connects to libvirt's in-process test driver. Every
// connection to test:///default in a process shares its domains.
func openTestDriver(t testing.TB) *virt.Conn {
	t.Helper()
	c, err := virt.Open("test:///default")
	if err != nil {
		t.Fatalf("libvirt test driver: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// testVM describes a domain for the test driver.
type testVM struct {
	name, uuid string
	nova       bool
	disks      []ferry.ImageSpec
	monitor    string // host:port of the disks' monitor (monitorOf)
}

func (v testVM) xml() string {
	var b strings.Builder
	fmt.Fprintf(&b, "<domain type='test'>\n  <name>%s</name>\n  <uuid>%s</uuid>\n", v.name, v.uuid)
	if v.nova {
		fmt.Fprintf(&b, `  <metadata>
    <other:thing xmlns:other="http://example.org/other"><other:name>not nova</other:name></other:thing>
    <nova:instance xmlns:nova="http://openstack.org/xmlns/libvirt/nova/1.1">
      <nova:package version="27.1.0"/>
      <nova:name>web-%s</nova:name>
      <nova:creationTime>2024-01-01 00:00:00</nova:creationTime>
      <nova:owner>
        <nova:user uuid="7d0e1e3a2b5c4f8e9a1b2c3d4e5f6a7b">alice</nova:user>
        <nova:project uuid="0123456789abcdef0123456789abcdef">demo</nova:project>
      </nova:owner>
    </nova:instance>
  </metadata>
`, v.name)
	}
	b.WriteString("  <memory unit='KiB'>65536</memory>\n  <vcpu>1</vcpu>\n  <os><type arch='x86_64'>hvm</type></os>\n  <devices>\n")
	for i, d := range v.disks {
		fmt.Fprintf(&b, `    <disk type='network' device='disk'>
      <driver name='qemu' type='raw' cache='writeback'/>
      <source protocol='rbd' name='%s/%s'>
        <host name='%s' port='%s'/>
        <auth username='admin'><secret type='ceph' uuid='5b6d8a3c-0c1f-4d5e-9f6a-7b8c9d0e1f2a'/></auth>
      </source>
      <target dev='vd%c' bus='virtio'/>
    </disk>
`, d.Pool, d.Image, hostOf(v.monitor), portOf(v.monitor), 'a'+i)
	}
	b.WriteString("    <disk type='file' device='cdrom'><source file='/nonexistent.iso'/><target dev='hdc' bus='ide'/><readonly/></disk>\n")
	b.WriteString("  </devices>\n</domain>\n")
	return b.String()
}

func hostOf(hp string) string { h, _, _ := strings.Cut(hp, ":"); return h }
func portOf(hp string) string { _, p, _ := strings.Cut(hp, ":"); return p }

// defineVM creates n RBD images on the source site named like Nova does
// (one ephemeral root disk, the rest Cinder volumes) and defines a domain
// using them; it returns the domain's description.
func defineVM(t testing.TB, hv *virt.Conn, n int, size uint64) testVM {
	t.Helper()
	source, _ := cephtest.Sites(t)
	v := testVM{name: testbed.ImageName(t, "vm"), uuid: newUUID(t), nova: true, monitor: monitorOf(t)}
	for i := range n {
		name := v.uuid + "_disk"
		if i > 0 {
			name = "volume-" + newUUID(t)
		}
		spec := ferry.ImageSpec{Pool: testbed.Pool, Image: name}
		if err := source.CreateImage(spec, size); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { removeImage(source, spec) })
		v.disks = append(v.disks, spec)
	}
	if _, err := hv.Define(v.xml()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = hv.Destroy(v.name)
		_ = hv.Undefine(v.name)
	})
	return v
}

// removeImage removes an image and its snapshots.
func removeImage(c *ceph.Cluster, spec ferry.ImageSpec) {
	snaps, _ := c.Snapshots(spec)
	for _, s := range snaps {
		_ = c.RemoveSnapshot(spec.AtSnap(s.Name))
	}
	_ = c.RemoveImage(spec)
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// startNATS starts an in-process JetStream server and connects to it with
// the streams of both sites set up.
func startNATS(t testing.TB) (*server.Server, *bus.Conn) {
	t.Helper()
	s := bustest.Server(t, bus.ServerOptions{})
	c := bustest.Connect(t, bus.ConnOptions{URL: s.ClientURL()})
	bustest.Setup(t, c)
	return s, c
}

// runPipeline runs the publisher and consumer daemons until the test ends.
func runPipeline(t *testing.T, conn *bus.Conn) {
	t.Helper()
	source, backup := cephtest.Sites(t)
	ctx, cancel := context.WithCancel(context.Background())
	pub, err := publisher.New(ctx, source, conn, publisher.Options{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	con, err := consumer.New(ctx, backup, conn, consumer.Options{Site: "test", BaseWait: time.Minute,
		BaseRetry: 200 * time.Millisecond, RetryDelay: 200 * time.Millisecond, MaxAttempts: 20, Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 2)
	go func() { _ = pub.Run(ctx); done <- struct{}{} }()
	go func() { _ = con.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
}

func newClusters(t testing.TB) *Clusters {
	t.Helper()
	sourceConnection := cephtest.Conn(testbed.Shared(t).Source)
	cs := &Clusters{ByMonitor: map[string]ceph.ConnOptions{monitorOf(t): sourceConnection},
		// A default that cannot work proves the disk's monitors chose the cluster.
		Default: ceph.ConnOptions{Conf: "/nonexistent/ceph.conf"}}
	t.Cleanup(cs.Close)
	return cs
}
