// Package virttest runs a real libvirtd and a real, tiny guest for tests:
// a private virtlogd and libvirtd (session mode, everything under one
// temporary directory, stopped by pid), and a TCG guest built at test time
// from Debian packages: the host's kernel booted directly and an initramfs
// with busybox-static and qemu-guest-agent that mounts its first virtio
// disk (ext4) on /data and serves the agent on org.qemu.guest_agent.0.
// From start to an answering agent takes about 10-20 s on two cores.
package virttest
