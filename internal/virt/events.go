package virt

import (
	"fmt"

	"libvirt.org/go/libvirt"
)

// EventKind is the kind of a domain lifecycle event.
type EventKind int

const (
	EventOther EventKind = iota
	EventStarted
	EventStopped // the domain is gone from the hypervisor: shut down, destroyed, crashed, migrated away
	EventShutdown
	EventSuspended
	EventResumed
	EventDefined
	EventUndefined
)

func (k EventKind) String() string {
	return [...]string{"other", "started", "stopped", "shutdown", "suspended", "resumed", "defined", "undefined"}[k]
}

// LifecycleEvent is one domain lifecycle change.
type LifecycleEvent struct {
	Domain string
	UUID   string
	Kind   EventKind
	Detail int // libvirt's detail code for the kind
}

func toKind(t libvirt.DomainEventType) EventKind {
	switch t {
	case libvirt.DOMAIN_EVENT_STARTED:
		return EventStarted
	case libvirt.DOMAIN_EVENT_STOPPED, libvirt.DOMAIN_EVENT_CRASHED:
		return EventStopped
	case libvirt.DOMAIN_EVENT_SHUTDOWN:
		return EventShutdown
	case libvirt.DOMAIN_EVENT_SUSPENDED, libvirt.DOMAIN_EVENT_PMSUSPENDED:
		return EventSuspended
	case libvirt.DOMAIN_EVENT_RESUMED:
		return EventResumed
	case libvirt.DOMAIN_EVENT_DEFINED:
		return EventDefined
	case libvirt.DOMAIN_EVENT_UNDEFINED:
		return EventUndefined
	}
	return EventOther
}

// OnLifecycle calls fn for every lifecycle event of every domain until the
// connection closes. fn runs on the event loop: it must not block.
func (c *Conn) OnLifecycle(fn func(LifecycleEvent)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	id, err := c.conn.DomainEventLifecycleRegister(nil, func(_ *libvirt.Connect, d *libvirt.Domain, ev *libvirt.DomainEventLifecycle) {
		name, _ := d.GetName()
		uuid, _ := d.GetUUIDString()
		fn(LifecycleEvent{Domain: name, UUID: uuid, Kind: toKind(ev.Event), Detail: ev.Detail})
	})
	if err != nil {
		return fmt.Errorf("libvirt %s: register lifecycle events: %w", c.uri, err)
	}
	c.callbacks = append(c.callbacks, id)
	return nil
}
