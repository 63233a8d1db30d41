package testbed

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// CommandTimeout bounds every command that Rbd, Ceph and the helpers below run, so that a hung
// cluster fails a test instead of hanging it until go test's own timeout.
var CommandTimeout = 5 * time.Minute

// Args returns the arguments that select this site for a Ceph command-line tool:
// -c CONF --id ID --keyring KEYRING.
func (s *Site) Args() []string {
	return []string{"-c", s.Conf, "--id", s.ID, "--keyring", s.Keyring}
}

// Env returns environment variables that select this site for a Ceph client that reads them
// (CEPH_CONF and CEPH_ARGS), e.g. a Ferry binary started by a test: append to os.Environ().
func (s *Site) Env() []string {
	return []string{"CEPH_CONF=" + s.Conf, "CEPH_ARGS=--id " + s.ID + " --keyring " + s.Keyring}
}

// Command returns an unstarted command for a Ceph tool ("rbd", "ceph", "rados") aimed at this
// site, e.g. to build a pipeline such as export-diff | import-diff.
func (s *Site) Command(ctx context.Context, tool string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, tool, append(s.Args(), args...)...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// runTool runs tool with args, feeding stdin (may be nil) and writing its stdout to stdout.
func (s *Site) runTool(stdin io.Reader, stdout io.Writer, tool string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), CommandTimeout)
	defer cancel()
	cmd := s.Command(ctx, tool, args...)
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (timed out after %v)", err, CommandTimeout)
		}
		return fmt.Errorf("%s site: %s %s: %w: %s", s.Name, tool, strings.Join(args, " "), err,
			strings.TrimSpace(stderr.String()))
	}
	return nil
}

// RbdErr runs `rbd -c CONF --id ID --keyring KEYRING args...` and returns its stdout; the error
// includes the command and its stderr.
func (s *Site) RbdErr(args ...string) (string, error) {
	var out bytes.Buffer
	err := s.runTool(nil, &out, "rbd", args...)
	return out.String(), err
}

// Rbd is RbdErr that fails the test on error.
func (s *Site) Rbd(t testing.TB, args ...string) string {
	t.Helper()
	out, err := s.RbdErr(args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

// CephErr runs `ceph -c CONF --id ID --keyring KEYRING args...` and returns its stdout.
func (s *Site) CephErr(args ...string) (string, error) {
	var out bytes.Buffer
	err := s.runTool(nil, &out, "ceph", args...)
	return out.String(), err
}

// Ceph is CephErr that fails the test on error.
func (s *Site) Ceph(t testing.TB, args ...string) string {
	t.Helper()
	out, err := s.CephErr(args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

// Spec returns "POOL/IMAGE[@SNAP]" for an image name (or IMAGE@SNAP) in the site's pool; a spec
// that already names a pool is returned as it is.
func (s *Site) Spec(image string) string {
	if strings.Contains(image, "/") {
		return image
	}
	return s.Pool + "/" + image
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// ImageName returns an image name unique to this test and call, e.g. "TestFoo-3f9a2c", or
// "PREFIX-TestFoo-3f9a2c" with a prefix. Characters that rbd does not take in a name ('/' and
// '@' among them) become '_'.
func ImageName(t testing.TB, prefix string) string {
	var r [3]byte
	rand.Read(r[:])
	name := t.Name()
	if prefix != "" {
		name = prefix + "-" + name
	}
	name = unsafeName.ReplaceAllString(name, "_")
	if len(name) > 80 {
		name = name[:80]
	}
	return name + "-" + hex.EncodeToString(r[:])
}

// CreateImage creates image (a name in the site's pool, or a POOL/NAME spec) of sizeBytes with
// the default features, plus extraArgs for `rbd create` (e.g. "--object-size", "1M"). It returns
// the image's spec. The image and its snapshots are removed when the test ends (best effort).
func (s *Site) CreateImage(t testing.TB, image string, sizeBytes int64, extraArgs ...string) string {
	t.Helper()
	spec := s.Spec(image)
	args := append([]string{"create", spec, "--size", strconv.FormatInt(sizeBytes, 10) + "B"}, extraArgs...)
	s.Rbd(t, args...)
	t.Cleanup(func() {
		s.RbdErr("snap", "purge", "--no-progress", spec)
		if _, err := s.RbdErr("rm", "--no-progress", spec); err != nil {
			t.Logf("testbed: cleanup: %v", err)
		}
	})
	return spec
}

// WriteImage writes everything r yields into image (name or spec) from byte offset off on,
// through `rbd import-diff` (a diff stream of data records, so it writes exactly those bytes and
// nothing else). The image must be large enough. It returns the number of bytes written.
func (s *Site) WriteImage(t testing.TB, image string, off int64, r io.Reader) int64 {
	t.Helper()
	n, err := s.WriteImageErr(image, off, r)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return n
}

// WriteImageErr is WriteImage without a test.
func (s *Site) WriteImageErr(image string, off int64, r io.Reader) (int64, error) {
	pr, pw := io.Pipe()
	var written int64
	done := make(chan error, 1)
	go func() {
		err := writeDiffStream(pw, off, r, &written)
		pw.CloseWithError(err)
		done <- err
	}()
	err := s.runTool(pr, io.Discard, "rbd", "import-diff", "--no-progress", "-", s.Spec(image))
	pr.CloseWithError(errors.New("rbd import-diff ended"))
	if werr := <-done; err == nil && werr != nil {
		err = fmt.Errorf("%s site: write %s: %w", s.Name, image, werr)
	}
	return written, err
}

// writeDiffStream writes r as an "rbd diff v1" stream: one 'w' record per chunk, then 'e'.
func writeDiffStream(w io.Writer, off int64, r io.Reader, written *int64) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	if _, err := bw.WriteString("rbd diff v1\n"); err != nil {
		return err
	}
	buf := make([]byte, 4<<20)
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			var hdr [17]byte
			hdr[0] = 'w'
			binary.LittleEndian.PutUint64(hdr[1:], uint64(off))
			binary.LittleEndian.PutUint64(hdr[9:], uint64(n))
			if _, err := bw.Write(hdr[:]); err != nil {
				return err
			}
			if _, err := bw.Write(buf[:n]); err != nil {
				return err
			}
			off += int64(n)
			*written += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read data to write: %w", rerr)
		}
	}
	if err := bw.WriteByte('e'); err != nil {
		return err
	}
	return bw.Flush()
}

// ExportImage returns the whole content of an image or snapshot (IMAGE, IMAGE@SNAP or a full
// spec) through `rbd export SPEC -`. For large images prefer SHA256.
func (s *Site) ExportImage(t testing.TB, spec string) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := s.runTool(nil, &out, "rbd", "export", "--no-progress", s.Spec(spec), "-"); err != nil {
		t.Fatalf("%v", err)
	}
	return out.Bytes()
}

// SHA256Err returns the hex SHA-256 of the whole content of an image or snapshot, streamed from
// `rbd export SPEC -` (nothing is buffered), and its size in bytes.
func (s *Site) SHA256Err(spec string) (sum string, size int64, err error) {
	h := sha256.New()
	cw := &countWriter{w: h}
	if err := s.runTool(nil, cw, "rbd", "export", "--no-progress", s.Spec(spec), "-"); err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), cw.n, nil
}

// SHA256 is SHA256Err that fails the test on error and returns only the hash.
func (s *Site) SHA256(t testing.TB, spec string) string {
	t.Helper()
	sum, _, err := s.SHA256Err(spec)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return sum
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Fsid returns the cluster's fsid (`ceph fsid`).
func (s *Site) Fsid(t testing.TB) string {
	t.Helper()
	return strings.TrimSpace(s.Ceph(t, "fsid"))
}

// UUID returns a random version 4 UUID, as Nova and Cinder put in image
// names (volume-<uuid>, <uuid>_disk.local).
func UUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
