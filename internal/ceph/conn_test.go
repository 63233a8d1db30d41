package ceph

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/ferry-dr/ferry/internal/testbed"
)

// TestConnectByClusterName: a cluster's name reaches librados as rbd's
// --cluster does, so $cluster in its ceph.conf and in ceph's default keyring
// paths names that cluster's files. The source site's ceph.conf is copied to
// DIR/other.conf with its keyring line made DIR/$cluster.$name.keyring, and
// the keyring copied to DIR/drsite.client.ID.keyring: only a connection
// named drsite finds it (without a name, librados takes $cluster from the
// file's name, "other").
func TestConnectByClusterName(t *testing.T) {
	s := testbed.Shared(t).Source
	dir := t.TempDir()
	conf, err := os.ReadFile(s.Conf)
	if err != nil {
		t.Fatal(err)
	}
	keyringLine := regexp.MustCompile(`(?m)^keyring = .*admin\.keyring$`)
	if len(keyringLine.FindAll(conf, -1)) != 1 {
		t.Fatalf("%s: want one line 'keyring = ...admin.keyring' (the [client] keyring) to rewrite", s.Conf)
	}
	conf = keyringLine.ReplaceAllLiteral(conf, []byte("keyring = "+dir+"/$cluster.$name.keyring"))
	named := filepath.Join(dir, "other.conf")
	if err := os.WriteFile(named, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(s.Keyring)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "drsite.client."+s.ID+".keyring"), key, 0o600); err != nil {
		t.Fatal(err)
	}

	c, err := Connect(ConnOptions{Conf: named, ID: s.ID, Cluster: "drsite"})
	if err != nil {
		t.Fatalf("connect as cluster drsite: %v", err)
	}
	defer c.Close()
	fsid, err := c.FSID()
	if err != nil || fsid == "" {
		t.Fatalf("FSID through the named connection: %q, %v", fsid, err)
	}
	// Without the name, $cluster is "other": no keyring at that path.
	if c, err := Connect(ConnOptions{Conf: named, ID: s.ID}); err == nil {
		c.Close()
		t.Fatal("connected without the cluster's name: the keyring path did not depend on it, so this test proves nothing")
	}
}
