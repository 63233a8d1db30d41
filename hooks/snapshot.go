package hooks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ferry-dr/ferry/internal/ceph"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/virt"
)

// Hypervisor is the part of a libvirt connection that snapshots need.
type Hypervisor interface {
	Domain(nameOrUUID string) (virt.Domain, error)
	FSFreeze(name string) error
	FSThaw(name string) error
}

// DefaultFreezeDeadline bounds how long a guest stays frozen.
const DefaultFreezeDeadline = 10 * time.Second

// SnapshotOptions tune one VM snapshot.
type SnapshotOptions struct {
	// RequireQuiesce refuses a crash-consistent snapshot of a running guest
	// whose agent cannot freeze it (Nova's os_require_quiesce).
	RequireQuiesce bool
	// FreezeDeadline bounds the time from freeze to thaw (default 10 s).
	// When it passes the guest is thawed at once, even if a snapshot call
	// is still running, and the snapshot fails.
	FreezeDeadline time.Duration
	// MarkerDir holds frozen markers (see ThawMarked); "" writes none.
	MarkerDir string
}

// VMSnapshot is one consistent snapshot of all of a VM's RBD disks.
type VMSnapshot struct {
	VM             VM
	Snapshot       string // the same name on every disk
	Consistency    ferry.Consistency
	FreezeDuration time.Duration // freeze call to thaw return; 0 when not frozen
	Note           string        // why the snapshot is not quiesced, if it is not
	Created        time.Time
}

var (
	// ErrQuiesceRequired: the VM's policy requires a quiesced snapshot and
	// the guest cannot be frozen.
	ErrQuiesceRequired = errors.New("quiesced snapshot required")
	// ErrFreezeDeadline: the snapshots did not finish within the freeze deadline.
	ErrFreezeDeadline = errors.New("freeze deadline passed")
)

// SnapshotVM snapshots every RBD disk of the domain named name under one
// snapshot name: frozen through the guest agent when the guest runs (thawed
// on every path), crash-consistent when its agent is unavailable and the
// policy allows it, unfrozen when it is shut off. On error no snapshot of
// the set is left behind.
func SnapshotVM(ctx context.Context, hv Hypervisor, clusters *Clusters, name string, opts SnapshotOptions) (VMSnapshot, error) {
	if opts.FreezeDeadline <= 0 {
		opts.FreezeDeadline = DefaultFreezeDeadline
	}
	dom, err := hv.Domain(name)
	if err != nil {
		return VMSnapshot{}, err
	}
	vm, err := ParseDomainXML(dom.XML)
	if err != nil {
		return VMSnapshot{}, err
	}
	if len(vm.Disks) == 0 {
		return VMSnapshot{}, fmt.Errorf("domain %s has no RBD disks: nothing to back up", dom.Name)
	}
	// Connect before freezing: the frozen time is for snapshots only.
	conns := make([]*ceph.Cluster, len(vm.Disks))
	for i, d := range vm.Disks {
		if conns[i], err = clusters.For(d); err != nil {
			return VMSnapshot{}, fmt.Errorf("snapshot %s: %w", dom.Name, err)
		}
	}
	now := time.Now()
	s := &snapshotRun{ctx: ctx, vm: vm, conns: conns, name: ferry.NewSnapshotName(now)}
	out := VMSnapshot{VM: vm, Snapshot: s.name, Created: now.UTC()}

	switch dom.State {
	case virt.StateShutoff:
		out.Consistency, out.Note = ferry.CrashConsistent, "domain shut off: disks are idle, not frozen"
		return out, s.takeAll(time.Time{})
	case virt.StateRunning:
		return s.frozen(hv, dom, opts, out)
	default:
		// A paused guest's agent cannot answer; its page cache is not flushed.
		if opts.RequireQuiesce {
			return VMSnapshot{}, fmt.Errorf("snapshot %s: %w, but the domain is %s (resume it first)", dom.Name, ErrQuiesceRequired, dom.State)
		}
		out.Consistency, out.Note = ferry.CrashConsistent, "domain "+dom.State.String()+": guest agent cannot freeze it"
		return out, s.takeAll(time.Time{})
	}
}

// snapshotRun takes one snapshot set and removes it again on failure.
type snapshotRun struct {
	ctx   context.Context
	vm    VM
	conns []*ceph.Cluster
	name  string
}

// removeAll removes the set's snapshot from every disk (only Ferry's own
// snapshot name is touched).
func (s *snapshotRun) removeAll() {
	for i, d := range s.vm.Disks {
		_ = s.conns[i].RemoveSnapshot(d.Image.AtSnap(s.name))
	}
}

// takeAll snapshots every disk at once, so a frozen guest waits for the
// slowest snapshot rather than for their sum; a zero deadline means none. On
// any failure, or past the deadline, the snapshots it took are removed: a
// partial or late set is not consistent.
func (s *snapshotRun) takeAll(deadline time.Time) error {
	late := func() bool { return !deadline.IsZero() && time.Now().After(deadline) }
	if err := s.ctx.Err(); err != nil {
		return fmt.Errorf("snapshot %s of %s: %w", s.name, s.vm.Name, err)
	}
	if late() {
		return fmt.Errorf("snapshot %s of %s: %w", s.name, s.vm.Name, ErrFreezeDeadline)
	}
	errs := make([]error, len(s.vm.Disks))
	var wg sync.WaitGroup
	for i, d := range s.vm.Disks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.conns[i].CreateSnapshot(d.Image.AtSnap(s.name))
		}()
	}
	wg.Wait()
	var first error
	for i, err := range errs {
		if err != nil && first == nil {
			first = fmt.Errorf("snapshot %s of %s (disk %s): %w", s.name, s.vm.Name, s.vm.Disks[i].Image, err)
		}
	}
	if first == nil && late() {
		// The guest was thawed under these snapshots: they are not consistent.
		first = fmt.Errorf("snapshot %s of %s: %w", s.name, s.vm.Name, ErrFreezeDeadline)
	}
	if first != nil {
		for i, err := range errs {
			if err == nil {
				_ = s.conns[i].RemoveSnapshot(s.vm.Disks[i].Image.AtSnap(s.name))
			}
		}
	}
	return first
}

func (s *snapshotRun) frozen(hv Hypervisor, dom virt.Domain, opts SnapshotOptions, out VMSnapshot) (res VMSnapshot, err error) {
	if err := writeMarker(opts.MarkerDir, dom); err != nil {
		return VMSnapshot{}, fmt.Errorf("snapshot %s: %w (refusing to freeze without it)", dom.Name, err)
	}
	var (
		once     sync.Once
		thawErr  error
		thawedAt time.Time
	)
	thaw := func() {
		once.Do(func() {
			thawErr = hv.FSThaw(dom.Name)
			thawedAt = time.Now()
		})
	}
	start := time.Now()
	deadline := start.Add(opts.FreezeDeadline)
	// The timer thaws at the deadline even while a snapshot call hangs in
	// librbd; the defer thaws on every other path, panics included. It is
	// armed only once the freeze has returned: a thaw sent while the freeze
	// is on its way can overtake it in libvirtd and leave the guest frozen
	// (seen with a real guest), and libvirtd runs one agent command at a
	// time, so an earlier thaw could not cut a slow freeze short anyway.
	var timer *time.Timer
	frozeOK := false
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		thaw()
		switch {
		case thawErr == nil, !frozeOK && errors.Is(thawErr, virt.ErrAgentUnavailable):
			// Thawed, or never frozen by us.
			if rerr := removeMarker(opts.MarkerDir, dom.UUID); rerr != nil && err == nil {
				err = rerr
			}
		case err == nil:
			s.removeAll()
			err = fmt.Errorf("thaw %s after snapshot: %w; the guest may still be frozen: run `virsh domfsthaw %s` (the agent retries at its next start)", dom.Name, thawErr, dom.Name)
		default:
			err = fmt.Errorf("%w; also, thaw failed: %v: run `virsh domfsthaw %s`", err, thawErr, dom.Name)
		}
		if err != nil {
			res = VMSnapshot{}
		} else if frozeOK {
			res.FreezeDuration = thawedAt.Sub(start)
		}
	}()

	freezeErr := hv.FSFreeze(dom.Name)
	switch {
	case freezeErr == nil:
		frozeOK = true
		out.Consistency = ferry.Quiesced
		timer = time.AfterFunc(time.Until(deadline), thaw)
	case errors.Is(freezeErr, virt.ErrAgentUnavailable):
		if opts.RequireQuiesce {
			return VMSnapshot{}, fmt.Errorf("snapshot %s: %w, but the guest cannot be frozen: %w (install and start qemu-guest-agent in the guest, or drop the quiesce requirement)", dom.Name, ErrQuiesceRequired, freezeErr)
		}
		deadline = time.Time{} // nothing frozen: no deadline
		out.Consistency, out.Note = ferry.CrashConsistent, freezeErr.Error()
	default:
		return VMSnapshot{}, fmt.Errorf("snapshot %s: freeze failed: %w (the guest was thawed; no snapshot taken)", dom.Name, freezeErr)
	}
	if err := s.takeAll(deadline); err != nil {
		if errors.Is(err, ErrFreezeDeadline) {
			err = fmt.Errorf("%w (deadline %s; the guest was thawed at the deadline; raise --freeze-deadline if the cluster is slow)", err, opts.FreezeDeadline)
		}
		return VMSnapshot{}, err
	}
	return out, nil // the deferred thaw records the frozen time
}
