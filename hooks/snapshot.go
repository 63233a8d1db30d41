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
	FreezeDuration time.Duration // freeze call sent to thaw returned; 0 when not frozen
	Frozen         FreezeTimes   // where FreezeDuration went; zero when not frozen
	Note           string        // why the snapshot is not quiesced, if it is not
	Created        time.Time
}

// FreezeTimes break a guest's frozen time down into its three steps, which
// add up to VMSnapshot.FreezeDuration.
type FreezeTimes struct {
	Freeze    time.Duration   // the freeze call, sent to returned (the agent syncs and freezes every filesystem)
	Snapshots time.Duration   // freeze returned to the last disk's snapshot created
	Thaw      time.Duration   // last snapshot created to the thaw call returned (it is sent at once)
	Disks     []time.Duration // each disk's snapshot call, in VM.Disks order
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
	// Connect and open every image before freezing, and close them after
	// the thaw: the frozen time is for the snapshots only.
	conns := make([]*ceph.Cluster, len(vm.Disks))
	targets := make([]*ceph.SnapshotTarget, len(vm.Disks))
	defer func() {
		for _, t := range targets {
			if t != nil {
				_ = t.Close()
			}
		}
	}()
	for i, d := range vm.Disks {
		if conns[i], err = clusters.For(d); err == nil {
			targets[i], err = conns[i].OpenSnapshotTarget(d.Image)
		}
		if err != nil {
			return VMSnapshot{}, fmt.Errorf("snapshot %s: %w", dom.Name, err)
		}
	}
	now := time.Now()
	s := &snapshotRun{ctx: ctx, vm: vm, conns: conns, targets: targets, name: ferry.NewSnapshotName(now)}
	out := VMSnapshot{VM: vm, Snapshot: s.name, Created: now.UTC()}

	switch dom.State {
	case virt.StateShutoff:
		out.Consistency, out.Note = ferry.CrashConsistent, "domain shut off: disks are idle, not frozen"
		_, err := s.takeAll(time.Time{}, ceph.LibrbdQuiesce)
		return out, err
	case virt.StateRunning:
		return s.frozen(hv, dom, opts, out)
	default:
		// A paused guest's agent cannot answer; its page cache is not flushed.
		if opts.RequireQuiesce {
			return VMSnapshot{}, fmt.Errorf("snapshot %s: %w, but the domain is %s (resume it first)", dom.Name, ErrQuiesceRequired, dom.State)
		}
		out.Consistency, out.Note = ferry.CrashConsistent, "domain "+dom.State.String()+": guest agent cannot freeze it"
		_, err := s.takeAll(time.Time{}, ceph.LibrbdQuiesce)
		return out, err
	}
}

// snapshotRun takes one snapshot set and removes it again on failure.
type snapshotRun struct {
	ctx     context.Context
	vm      VM
	conns   []*ceph.Cluster
	targets []*ceph.SnapshotTarget // open before the freeze, closed after the thaw
	name    string
}

// removeAll removes the set's snapshot from every disk (only Ferry's own
// snapshot name is touched).
func (s *snapshotRun) removeAll() {
	for i, d := range s.vm.Disks {
		_ = s.conns[i].RemoveSnapshot(d.Image.AtSnap(s.name))
	}
}

// takeAll snapshots every disk at once, so a frozen guest waits for the
// slowest snapshot rather than for their sum; a zero deadline means none. It
// returns how long each disk's snapshot took. On any failure, or past the
// deadline, the snapshots it took are removed: a partial or late set is not
// consistent.
func (s *snapshotRun) takeAll(deadline time.Time, mode ceph.SnapshotMode) ([]time.Duration, error) {
	late := func() bool { return !deadline.IsZero() && time.Now().After(deadline) }
	if err := s.ctx.Err(); err != nil {
		return nil, fmt.Errorf("snapshot %s of %s: %w", s.name, s.vm.Name, err)
	}
	if late() {
		return nil, fmt.Errorf("snapshot %s of %s: %w", s.name, s.vm.Name, ErrFreezeDeadline)
	}
	errs := make([]error, len(s.vm.Disks))
	took := make([]time.Duration, len(s.vm.Disks))
	var wg sync.WaitGroup
	for i := range s.vm.Disks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			errs[i] = s.targets[i].CreateSnapshot(s.name, mode)
			took[i] = time.Since(t0)
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
		return nil, first
	}
	return took, nil
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
	var frozeAt, snappedAt time.Time
	var took []time.Duration
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
			res.Frozen = FreezeTimes{Freeze: frozeAt.Sub(start), Snapshots: snappedAt.Sub(frozeAt),
				Thaw: thawedAt.Sub(snappedAt), Disks: took}
		}
	}()

	freezeErr := hv.FSFreeze(dom.Name)
	mode := ceph.LibrbdQuiesce
	switch {
	case freezeErr == nil:
		frozeAt, frozeOK = time.Now(), true
		// The agent froze the guest: librbd's own quiesce round trips
		// would only add to the frozen time.
		mode = ceph.SkipQuiesce
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
	took, err = s.takeAll(deadline, mode)
	snappedAt = time.Now()
	if err != nil {
		if errors.Is(err, ErrFreezeDeadline) {
			err = fmt.Errorf("%w (deadline %s; the guest was thawed at the deadline; raise --freeze-deadline if the cluster is slow)", err, opts.FreezeDeadline)
		}
		return VMSnapshot{}, err
	}
	return out, nil // the deferred thaw records the frozen times
}
