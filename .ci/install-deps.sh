#!/usr/bin/env bash
# Installs the Debian packages that Ferry's build and tests need, only if one is missing.
# Idempotent and quiet when everything is already there. Run as root (or with sudo).
set -euo pipefail

PACKAGES=(
	ceph-mon ceph-osd ceph-mgr ceph-common
	librbd-dev librados-dev
	uuid-runtime pkg-config gcc
	dpkg-dev lintian systemd man-db
	prometheus
	libvirt-dev libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86 qemu-block-extra qemu-guest-agent linux-image-amd64 busybox-static e2fsprogs
	cinder-api keystone
)

missing=()
for p in "${PACKAGES[@]}"; do
	if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != "installed" ]; then
		missing+=("$p")
	fi
done
[ "${#missing[@]}" -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
