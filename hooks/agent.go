package hooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ferry-dr/ferry/internal/bus"
	"github.com/ferry-dr/ferry/internal/ferry"
	"github.com/ferry-dr/ferry/internal/virt"
	"github.com/nats-io/nats.go"
)

// Schedule backs up one domain at a fixed interval.
type Schedule struct {
	Domain string
	Every  time.Duration
}

// AgentOptions configure the agent of one hypervisor host.
type AgentOptions struct {
	URI              string // libvirt URI, e.g. qemu:///system
	Host             string // names the host in NATS subjects
	Schedules        []Schedule
	BackupOnShutdown bool // a final backup when a domain stops
	Snapshot         SnapshotOptions
	Clusters         *Clusters
	Bus              *bus.Conn
	Log              *slog.Logger
	// ReconnectWait is the pause between attempts to reach libvirtd (default 2 s).
	ReconnectWait time.Duration
	// PolicySource, when set, opts domains in by their disks' ferry:policy;
	// Policies names the intervals, PolicyRefresh is how often the source is
	// asked again (default DefaultPolicyRefresh).
	PolicySource  PolicySource
	Policies      map[string]time.Duration
	PolicyRefresh time.Duration
}

// BackupRequest is the body of a request on AgentSubject.
type BackupRequest struct {
	Domain string `json:"domain"`
}

// BackupReply answers a BackupRequest.
type BackupReply struct {
	Domain         string            `json:"domain"`
	Snapshot       string            `json:"snapshot,omitempty"`
	Consistency    ferry.Consistency `json:"consistency,omitempty"`
	FreezeDuration time.Duration     `json:"freeze_duration_ns,omitempty"`
	// Where the frozen time went (see FreezeTimes).
	FreezeCall    time.Duration `json:"freeze_call_ns,omitempty"`
	SnapshotsTook time.Duration `json:"snapshots_ns,omitempty"`
	ThawCall      time.Duration `json:"thaw_call_ns,omitempty"`
	Disks         []string      `json:"disks,omitempty"`
	Note          string        `json:"note,omitempty"`
	Error         string        `json:"error,omitempty"`
}

// AgentSubject is where the agent of host takes on-demand backup requests.
func AgentSubject(host string) string { return bus.AgentSubject + "." + bus.Token(host) + ".backup" }

// Agent backs up the VMs of one hypervisor: on schedules, on request over
// NATS and when a domain stops. It keeps one libvirt connection and opens a
// new one (registering its callbacks again) whenever libvirtd goes away.
// Backups run one at a time, so a guest is never frozen twice at once.
type Agent struct {
	o    AgentOptions
	jobs chan job

	mu   sync.Mutex
	conn *virt.Conn // nil while libvirt is unreachable
}

type job struct {
	domain, reason string
	reply          chan<- BackupReply // nil: nobody waits
}

// NewAgent returns an agent; Run starts it.
func NewAgent(o AgentOptions) *Agent {
	if o.ReconnectWait <= 0 {
		o.ReconnectWait = 2 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.PolicyRefresh <= 0 {
		o.PolicyRefresh = DefaultPolicyRefresh
	}
	return &Agent{o: o, jobs: make(chan job, 64)}
}

// Conn returns the current libvirt connection, or nil.
func (a *Agent) Conn() *virt.Conn {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.conn
}

func (a *Agent) setConn(c *virt.Conn) {
	a.mu.Lock()
	a.conn = c
	a.mu.Unlock()
}

// Run runs the agent until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	if err := bus.SetupSource(ctx, a.o.Bus.Source, bus.DefaultRetention); err != nil {
		return err
	}
	sub, err := a.o.Bus.NC.Subscribe(AgentSubject(a.o.Host), a.handleRequest)
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", AgentSubject(a.o.Host), err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	notices, err := a.o.Bus.NC.Subscribe(NoticeSubject(a.o.Host, ">"), a.handleNotice)
	if err != nil {
		return fmt.Errorf("subscribe to hook notices: %w", err)
	}
	defer func() { _ = notices.Unsubscribe() }()

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Add(1)
	go func() { defer wg.Done(); a.work(ctx) }()
	for _, s := range a.o.Schedules {
		wg.Add(1)
		go func() { defer wg.Done(); a.schedule(ctx, s) }()
	}
	if a.o.PolicySource != nil {
		wg.Add(1)
		go func() { defer wg.Done(); a.runPolicies(ctx) }()
	}
	a.o.Log.Info("agent running", "libvirt", a.o.URI, "host", a.o.Host, "request_subject", AgentSubject(a.o.Host))
	a.keepConnected(ctx)
	return nil
}

// keepConnected holds a libvirt connection open until ctx ends, opening a
// new one whenever the current one is lost.
func (a *Agent) keepConnected(ctx context.Context) {
	for {
		c, err := a.connect()
		if err != nil {
			a.o.Log.Warn("libvirt unreachable; retrying", "uri", a.o.URI, "error", err, "retry_in", a.o.ReconnectWait)
		} else {
			a.setConn(c)
			select {
			case <-ctx.Done():
				a.setConn(nil)
				_ = c.Close()
				return
			case <-c.Done():
				a.setConn(nil)
				_ = c.Close()
				a.o.Log.Warn("libvirt connection lost; reconnecting", "uri", a.o.URI)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(a.o.ReconnectWait):
		}
	}
}

// connect opens a connection, registers the lifecycle callback and thaws
// guests a crashed predecessor may have left frozen.
func (a *Agent) connect() (*virt.Conn, error) {
	c, err := virt.Open(a.o.URI)
	if err != nil {
		return nil, err
	}
	if err := c.OnLifecycle(a.onLifecycle); err != nil {
		_ = c.Close()
		return nil, err
	}
	if a.o.Snapshot.MarkerDir != "" {
		if _, err := ThawMarked(c, a.o.Snapshot.MarkerDir, a.o.Log); err != nil {
			a.o.Log.Error("guests left frozen by a previous run", "error", err)
		}
	}
	a.o.Log.Info("connected to libvirt", "uri", a.o.URI)
	return c, nil
}

// onLifecycle runs on libvirt's event loop: it only queues work.
func (a *Agent) onLifecycle(ev virt.LifecycleEvent) {
	a.o.Log.Debug("domain event", "domain", ev.Domain, "event", ev.Kind.String())
	if ev.Kind == virt.EventStopped && a.o.BackupOnShutdown {
		a.enqueue(job{domain: ev.Domain, reason: "domain stopped"})
	}
}

func (a *Agent) enqueue(j job) {
	select {
	case a.jobs <- j:
	default:
		a.o.Log.Error("backup queue full; dropping a trigger", "domain", j.domain, "reason", j.reason)
		if j.reply != nil {
			j.reply <- BackupReply{Domain: j.domain, Error: "agent busy: backup queue full"}
		}
	}
}

func (a *Agent) schedule(ctx context.Context, s Schedule) {
	t := time.NewTicker(s.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.enqueue(job{domain: s.Domain, reason: "every " + s.Every.String()})
		}
	}
}

func (a *Agent) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-a.jobs:
			r := a.Backup(ctx, j.domain)
			if r.Error != "" {
				a.o.Log.Error("backup failed", "domain", j.domain, "reason", j.reason, "error", r.Error)
			} else {
				a.o.Log.Info("snapshot queued for backup", "domain", j.domain, "reason", j.reason, "snapshot", r.Snapshot,
					"consistency", r.Consistency, "frozen", r.FreezeDuration, "freeze_call", r.FreezeCall,
					"snapshots", r.SnapshotsTook, "thaw_call", r.ThawCall, "disks", len(r.Disks))
			}
			if j.reply != nil {
				j.reply <- r
			}
		}
	}
}

// ErrNotConnected: libvirt is unreachable right now.
var ErrNotConnected = errors.New("not connected to libvirt")

// Backup snapshots domain and publishes its snapshot events. Callers other
// than the agent's own worker must not overlap with it; use a request.
func (a *Agent) Backup(ctx context.Context, domain string) BackupReply {
	r := BackupReply{Domain: domain}
	c := a.Conn()
	if c == nil {
		r.Error = fmt.Sprintf("backup %s: %v (%s); retrying in the background", domain, ErrNotConnected, a.o.URI)
		return r
	}
	s, err := SnapshotVM(ctx, c, a.o.Clusters, domain, a.o.Snapshot)
	if err == nil {
		err = Publish(ctx, a.o.Bus, s)
	}
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.Snapshot, r.Consistency, r.FreezeDuration, r.Disks, r.Note = s.Snapshot, s.Consistency, s.FreezeDuration, s.VM.Specs(), s.Note
	r.FreezeCall, r.SnapshotsTook, r.ThawCall = s.Frozen.Freeze, s.Frozen.Snapshots, s.Frozen.Thaw
	return r
}

// handleRequest runs on a NATS goroutine; the worker does the backup.
func (a *Agent) handleRequest(m *nats.Msg) {
	var req BackupRequest
	if err := json.Unmarshal(m.Data, &req); err != nil || req.Domain == "" {
		a.respond(m, BackupReply{Error: `bad request: want {"domain": "NAME or UUID"}`})
		return
	}
	reply := make(chan BackupReply, 1)
	a.enqueue(job{domain: req.Domain, reason: "request", reply: reply})
	go func() { a.respond(m, <-reply) }()
}

func (a *Agent) respond(m *nats.Msg, r BackupReply) {
	raw, _ := json.Marshal(r)
	if err := m.Respond(raw); err != nil {
		a.o.Log.Warn("reply to backup request", "error", err)
	}
}

func (a *Agent) handleNotice(m *nats.Msg) {
	var n Notice
	if json.Unmarshal(m.Data, &n) == nil {
		a.o.Log.Info("hook notice", "domain", n.Domain, "op", n.Op, "subop", n.SubOp)
	}
}
