// Package hooks connects Ferry to the hypervisor: it discovers each VM's
// RBD disks and OpenStack identity from its libvirt definition, takes a
// consistent snapshot of all of a VM's disks (guest filesystems frozen
// through the QEMU guest agent, snapshots taken, guest thawed, all under a
// deadline), publishes one snapshot event per disk for the publisher, and
// runs the agent that decides when to do so (schedules, requests over NATS,
// lifecycle events). The libvirt hook script itself only sends a notice
// (notice.go): libvirtd calls it synchronously and it must never call back.
package hooks
