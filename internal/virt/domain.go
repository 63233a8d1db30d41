package virt

import (
	"errors"
	"fmt"
	"strings"

	"libvirt.org/go/libvirt"
)

// State is the run state of a domain, reduced to what Ferry acts on.
type State int

const (
	StateOther   State = iota
	StateRunning       // running or blocked: the guest can write
	StatePaused        // paused or suspended: vCPUs stopped, guest agent cannot answer
	StateShutoff       // shut off or crashed: no guest, disks quiet
)

func (s State) String() string {
	switch s {
	case StateRunning:
		return "running"
	case StatePaused:
		return "paused"
	case StateShutoff:
		return "shut off"
	}
	return "other"
}

func toState(s libvirt.DomainState) State {
	switch s {
	case libvirt.DOMAIN_RUNNING, libvirt.DOMAIN_BLOCKED:
		return StateRunning
	case libvirt.DOMAIN_PAUSED, libvirt.DOMAIN_PMSUSPENDED:
		return StatePaused
	case libvirt.DOMAIN_SHUTOFF, libvirt.DOMAIN_CRASHED:
		return StateShutoff
	}
	return StateOther
}

// Domain is a snapshot of what libvirt knows about one domain.
type Domain struct {
	Name  string
	UUID  string
	State State
	XML   string // live definition (inactive definition when shut off)
}

// ErrNoDomain is returned when no domain has the given name or UUID.
var ErrNoDomain = errors.New("no such domain")

// lookup finds a domain by name, then by UUID; the caller frees it.
func lookup(lc *libvirt.Connect, nameOrUUID string) (*libvirt.Domain, error) {
	d, err := lc.LookupDomainByName(nameOrUUID)
	if err == nil {
		return d, nil
	}
	if d, uerr := lc.LookupDomainByUUIDString(nameOrUUID); uerr == nil {
		return d, nil
	}
	var lerr libvirt.Error
	if errors.As(err, &lerr) && lerr.Code == libvirt.ERR_NO_DOMAIN {
		return nil, fmt.Errorf("domain %s: %w", nameOrUUID, ErrNoDomain)
	}
	return nil, fmt.Errorf("look up domain %s: %w", nameOrUUID, err)
}

func describe(d *libvirt.Domain) (Domain, error) {
	var out Domain
	var err error
	if out.Name, err = d.GetName(); err != nil {
		return out, err
	}
	if out.UUID, err = d.GetUUIDString(); err != nil {
		return out, err
	}
	st, _, err := d.GetState()
	if err != nil {
		return out, fmt.Errorf("state of domain %s: %w", out.Name, err)
	}
	out.State = toState(st)
	if out.XML, err = d.GetXMLDesc(0); err != nil {
		return out, fmt.Errorf("XML of domain %s: %w", out.Name, err)
	}
	return out, nil
}

// Domain returns the domain with the given name or UUID.
func (c *Conn) Domain(nameOrUUID string) (Domain, error) {
	var out Domain
	err := c.with(func(lc *libvirt.Connect) error {
		d, err := lookup(lc, nameOrUUID)
		if err != nil {
			return err
		}
		defer d.Free()
		out, err = describe(d)
		return err
	})
	return out, err
}

// Domains returns every domain, running or defined.
func (c *Conn) Domains() ([]Domain, error) {
	var out []Domain
	err := c.with(func(lc *libvirt.Connect) error {
		doms, err := lc.ListAllDomains(0)
		if err != nil {
			return fmt.Errorf("list domains: %w", err)
		}
		defer func() {
			for i := range doms {
				_ = doms[i].Free()
			}
		}()
		for i := range doms {
			d, err := describe(&doms[i])
			if err != nil {
				// A domain can vanish between list and describe.
				continue
			}
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

// Define defines (persistently) a domain from its XML and returns its name.
func (c *Conn) Define(xml string) (string, error) {
	var name string
	err := c.with(func(lc *libvirt.Connect) error {
		d, err := lc.DomainDefineXML(xml)
		if err != nil {
			return fmt.Errorf("define domain: %w", err)
		}
		defer d.Free()
		name, err = d.GetName()
		return err
	})
	return name, err
}

// domainOp runs op on the domain named nameOrUUID.
func (c *Conn) domainOp(nameOrUUID, what string, op func(*libvirt.Domain) error) error {
	return c.with(func(lc *libvirt.Connect) error {
		d, err := lookup(lc, nameOrUUID)
		if err != nil {
			return err
		}
		defer d.Free()
		if err := op(d); err != nil {
			return fmt.Errorf("%s domain %s: %w", what, nameOrUUID, err)
		}
		return nil
	})
}

// Start boots a defined domain.
func (c *Conn) Start(name string) error {
	return c.domainOp(name, "start", func(d *libvirt.Domain) error { return d.Create() })
}

// Destroy stops a domain at once (power off).
func (c *Conn) Destroy(name string) error {
	return c.domainOp(name, "destroy", func(d *libvirt.Domain) error { return d.Destroy() })
}

// Undefine removes a domain's persistent definition.
func (c *Conn) Undefine(name string) error {
	return c.domainOp(name, "undefine", func(d *libvirt.Domain) error { return d.Undefine() })
}

// ErrAgentUnavailable means the guest agent is not configured, not
// connected or not answering: the guest cannot be quiesced right now.
var ErrAgentUnavailable = errors.New("guest agent unavailable")

// FSFreeze freezes every guest filesystem through the QEMU guest agent.
// Agent trouble is reported as ErrAgentUnavailable (wrapped with libvirt's
// own message); anything else, such as a guest that is already frozen,
// comes back as libvirt's error.
func (c *Conn) FSFreeze(name string) error {
	return c.domainOp(name, "freeze filesystems of", func(d *libvirt.Domain) error {
		return classifyAgentError(d.FSFreeze(nil, 0))
	})
}

// FSThaw thaws every guest filesystem. Thawing a guest that is not frozen
// succeeds.
func (c *Conn) FSThaw(name string) error {
	return c.domainOp(name, "thaw filesystems of", func(d *libvirt.Domain) error {
		return classifyAgentError(d.FSThaw(nil, 0))
	})
}

func classifyAgentError(err error) error {
	if err == nil {
		return nil
	}
	var lerr libvirt.Error
	if !errors.As(err, &lerr) {
		return err
	}
	switch lerr.Code {
	case libvirt.ERR_AGENT_UNRESPONSIVE, libvirt.ERR_AGENT_UNSYNCED:
		return fmt.Errorf("%w: %s", ErrAgentUnavailable, lerr.Message)
	case libvirt.ERR_ARGUMENT_UNSUPPORTED, libvirt.ERR_CONFIG_UNSUPPORTED:
		// "QEMU guest agent is not configured": no channel in the domain.
		if strings.Contains(lerr.Message, "agent") {
			return fmt.Errorf("%w: %s", ErrAgentUnavailable, lerr.Message)
		}
	}
	return fmt.Errorf("%s", lerr.Message)
}

// Suspend pauses a running domain's vCPUs.
func (c *Conn) Suspend(name string) error {
	return c.domainOp(name, "suspend", func(d *libvirt.Domain) error { return d.Suspend() })
}

// Resume resumes a paused domain.
func (c *Conn) Resume(name string) error {
	return c.domainOp(name, "resume", func(d *libvirt.Domain) error { return d.Resume() })
}
