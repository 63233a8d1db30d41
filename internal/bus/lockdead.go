package bus

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// errHolderAlive: the lock's holder may still be running.
var errHolderAlive = errors.New("the lock's holder may be alive")

func thisProcess(holder string) lockHolder {
	host, _ := os.Hostname()
	return lockHolder{Holder: holder, Since: time.Now().UTC(), Host: host, PID: os.Getpid()}
}

// takeOverDead takes key over from a holder known to be gone: a process of
// this host that no longer runs (killed, or crashed, and restarted by
// systemd). Waiting for its lock to expire would only delay the backups. The take-over is conditional
// on the dead holder's revision, so two successors cannot both win.
func takeOverDead(ctx context.Context, kv jetstream.KeyValue, key string, value []byte) (uint64, error) {
	e, err := kv.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	var h lockHolder
	if json.Unmarshal(e.Value(), &h) != nil || !gone(h) {
		return 0, errHolderAlive
	}
	return kv.Update(ctx, key, value, e.Revision())
}

// gone tells whether h is a process of this host that is not running. A
// lock of another host, or one that does not say, is not; nor is one of a
// pid in use again (then it expires as any other).
func gone(h lockHolder) bool {
	host, err := os.Hostname()
	if err != nil || h.Host != host || h.PID <= 0 {
		return false
	}
	err = syscall.Kill(h.PID, 0)
	return errors.Is(err, syscall.ESRCH)
}
