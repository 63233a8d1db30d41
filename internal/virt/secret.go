package virt

import (
	"fmt"

	"libvirt.org/go/libvirt"
)

// DefineCephSecret defines (or replaces) the libvirt secret with the given
// UUID and sets its value to a cephx key (the raw bytes, not base64). Disks
// name it in <auth><secret type='ceph' uuid=.../></auth>; QEMU's rbd driver
// gets the key from libvirt when the domain starts.
func (c *Conn) DefineCephSecret(uuid, usage string, key []byte) error {
	xml := fmt.Sprintf("<secret ephemeral='no' private='yes'><uuid>%s</uuid>"+
		"<usage type='ceph'><name>%s</name></usage></secret>", uuid, usage)
	return c.with(func(lc *libvirt.Connect) error {
		s, err := lc.SecretDefineXML(xml, 0)
		if err != nil {
			return fmt.Errorf("define ceph secret %s: %w", uuid, err)
		}
		defer s.Free()
		if err := s.SetValue(key, 0); err != nil {
			return fmt.Errorf("set value of ceph secret %s: %w", uuid, err)
		}
		return nil
	})
}

// UndefineSecret removes the secret with the given UUID.
func (c *Conn) UndefineSecret(uuid string) error {
	return c.with(func(lc *libvirt.Connect) error {
		s, err := lc.LookupSecretByUUIDString(uuid)
		if err != nil {
			return fmt.Errorf("look up secret %s: %w", uuid, err)
		}
		defer s.Free()
		if err := s.Undefine(); err != nil {
			return fmt.Errorf("undefine secret %s: %w", uuid, err)
		}
		return nil
	})
}
