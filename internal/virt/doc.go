// Package virt is Ferry's only cgo binding to libvirt: connections that
// notice when libvirtd goes away, domain lookup (name, UUID, state, XML),
// guest filesystem freeze and thaw through the QEMU guest agent, and
// lifecycle events.
//
// libvirt delivers events through one process-wide event loop. The package
// registers libvirt's default implementation before the first connection
// opens and runs it on one goroutine for the life of the process; callbacks
// run on that goroutine, so they must hand work off and return quickly.
package virt
