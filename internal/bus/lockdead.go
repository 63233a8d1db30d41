package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// errHolderAlive: the lock's holder may still be running.
var errHolderAlive = errors.New("the lock's holder may be alive")

// holding has the tokens of the locks this process holds now.
var holding sync.Map

// takenOverKey keys the gone holder's name in the context HoldLock returns.
type takenOverKey struct{}

// TakenOver names the gone holder whose lock HoldLock took over at once for
// held (the context it returned); "" when the lock was free or expired.
func TakenOver(held context.Context) string {
	from, _ := held.Value(takenOverKey{}).(string)
	return from
}

func thisProcess(holder string) lockHolder {
	host, _ := os.Hostname()
	token := make([]byte, 8)
	_, _ = rand.Read(token)
	return lockHolder{Holder: holder, Since: time.Now().UTC(), Host: host, PID: os.Getpid(), Token: hex.EncodeToString(token)}
}

// takeOverDead takes key over from a holder known to be gone: a process of
// this host that no longer runs (killed, or crashed, and restarted by
// systemd), or this process after it gave the lock up while NATS could not
// be reached. Waiting for its lock to expire would only delay the backups.
// The take-over is conditional on the gone holder's revision, so two
// successors cannot both win. It returns the gone holder's name.
func takeOverDead(ctx context.Context, kv jetstream.KeyValue, key string, value []byte) (uint64, string, error) {
	e, err := kv.Get(ctx, key)
	if err != nil {
		return 0, "", err
	}
	var h lockHolder
	if json.Unmarshal(e.Value(), &h) != nil || !gone(h) {
		return 0, "", errHolderAlive
	}
	rev, err := kv.Update(ctx, key, value, e.Revision())
	return rev, fmt.Sprintf("%s (since %s)", h.Holder, h.Since.Format(time.RFC3339)), err
}

// gone tells whether h is a process of this host that is not running, or
// a holding of this process that has ended. A lock of another host, or one
// that does not say, is not; nor is one of a pid in use again (then it
// expires as any other), nor one this process still holds (two consumers
// of one process, as in tests: the second stands by).
func gone(h lockHolder) bool {
	host, err := os.Hostname()
	if err != nil || h.Host != host || h.PID <= 0 {
		return false
	}
	if h.PID == os.Getpid() {
		_, held := holding.Load(h.Token)
		return h.Token != "" && !held
	}
	err = syscall.Kill(h.PID, 0)
	return errors.Is(err, syscall.ESRCH)
}
