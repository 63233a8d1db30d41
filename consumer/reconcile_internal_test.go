package consumer

import (
	"context"
	"errors"
	"testing"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/bus/bustest"
	"github.com/ferry-dr/ferry/internal/ceph/cephtest"
	"github.com/ferry-dr/ferry/internal/ferry"
)

// TestFailKeepsUnreadableState: a failure is not recorded over a state
// that could not be read. A blank state written in its place would lose
// the confirmed snapshots, and the next backup would go out as a full one.
func TestFailKeepsUnreadableState(t *testing.T) {
	_, backup := cephtest.Sites(t)
	srv := bustest.Server(t, bus.ServerOptions{Name: "fail-unreadable"})
	conn := bustest.Connect(t, bus.ConnOptions{URL: srv.ClientURL()})
	ctx := context.Background()
	if err := bus.SetupBackup(ctx, conn.Backup, bus.DefaultRetention); err != nil {
		t.Fatal(err)
	}
	c, err := New(ctx, backup, conn, Options{Site: "test"})
	if err != nil {
		t.Fatal(err)
	}
	img := ferry.ImageSpec{Pool: "rbd", Image: "vm-unreadable"}
	kv, err := conn.Backup.KeyValue(ctx, bus.StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	const unreadable = `{"image": not what a state looks like`
	if _, err := kv.PutString(ctx, bus.ImageKey(img), unreadable); err != nil {
		t.Fatal(err)
	}
	m := &ferry.Manifest{BackupID: "id/rbd/vm-unreadable@s2", Image: img.AtSnap("s2"), SourceImageID: "id", FromSnap: "s1", ToSnap: "s2"}
	c.fail(ctx, m, errors.New("the import failed"), false)
	e, err := kv.Get(ctx, bus.ImageKey(img))
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Value()) != unreadable {
		t.Fatalf("fail wrote %s over a state it could not read", e.Value())
	}
}
