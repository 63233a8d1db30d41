package virt

import (
	"fmt"
	"time"

	"libvirt.org/go/libvirt"
)

// AgentCommand sends one raw QMP command (JSON, e.g.
// `{"execute":"guest-fsfreeze-status"}`) to the domain's guest agent and
// returns its raw JSON reply. It bypasses libvirt's bookkeeping, so it is
// the way to ask the guest itself, for example whether it is frozen.
// Agent trouble is reported as ErrAgentUnavailable.
func (c *Conn) AgentCommand(name, command string, timeout time.Duration) (string, error) {
	secs := int(timeout / time.Second)
	if secs < 1 {
		secs = 1
	}
	var reply string
	err := c.domainOp(name, "guest agent command on", func(d *libvirt.Domain) error {
		var err error
		reply, err = d.QemuAgentCommand(command, libvirt.DomainQemuAgentCommandTimeout(secs), 0)
		return classifyAgentError(err)
	})
	if err != nil {
		return "", fmt.Errorf("%w (command %s)", err, command)
	}
	return reply, nil
}
