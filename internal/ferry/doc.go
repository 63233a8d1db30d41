// Package ferry holds the small shared vocabulary of a backup: which image
// and snapshot we mean (ImageSpec), and the messages the hooks, the publisher
// and the consumer exchange. It has no dependencies on Ceph, NATS or libvirt,
// so every other package may import it.
package ferry
