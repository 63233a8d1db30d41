package hooks

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// HookOptions configure one run of the libvirt hook.
type HookOptions struct {
	Host   string
	Notice NoticeOptions
	// Budget bounds the whole run, reading the domain XML included: libvirtd
	// waits for the hook, so it must return quickly whatever happens.
	Budget time.Duration
}

// RunHook handles one call of libvirt's qemu hook: args are
// [qemu] NAME OP SUBOP EXTRA and stdin holds the domain XML. It only
// sends a notice for the agent and never calls back into libvirt (that
// would deadlock libvirtd). It returns within the budget; the error is for
// logging only, the hook must still exit 0.
func RunHook(args []string, stdin io.Reader, o HookOptions) error {
	if len(args) > 0 && args[0] == "qemu" {
		args = args[1:]
	}
	if len(args) < 2 {
		return errors.New("want: [qemu] DOMAIN OP [SUBOP [EXTRA]], as libvirtd calls hooks")
	}
	n := Notice{Host: o.Host, Domain: args[0], Op: args[1], Time: time.Now().UTC()}
	if len(args) > 2 {
		n.SubOp = args[2]
	}
	if len(args) > 3 {
		n.Extra = args[3]
	}
	done := make(chan error, 1)
	// The goroutine may outlive RunHook when stdin or NATS stalls; the
	// process exits right after, which ends it.
	go func() {
		defer func() { // a panic here would exit 2, past RunHook's caller
			if r := recover(); r != nil {
				done <- fmt.Errorf("hook notice for %s %s: panic: %v", n.Domain, n.Op, r)
			}
		}()
		n.UUID, n.InstanceID = identityFromXML(stdin)
		done <- SendNotice(n, o.Notice)
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(o.Budget):
		return fmt.Errorf("hook notice for %s %s not sent within %s; giving up (libvirtd must not wait)", n.Domain, n.Op, o.Budget)
	}
}

// identityFromXML reads the domain UUID and Nova instance from the domain
// XML on stdin; a missing or broken document yields empty strings.
func identityFromXML(r io.Reader) (uuid, instance string) {
	if r == nil {
		return "", ""
	}
	raw, err := io.ReadAll(io.LimitReader(r, 4<<20))
	if err != nil || len(raw) == 0 {
		return "", ""
	}
	vm, err := ParseDomainXML(string(raw))
	if err != nil {
		return "", ""
	}
	if vm.Instance != nil {
		instance = vm.Instance.UUID
	}
	return vm.UUID, instance
}
