#!/usr/bin/env bash
# Runs docs/operations.md's "First backup, step by step" as written: every
# ```sh block of that section, in order, from `dpkg -i` of the package that
# `make package` built to a first two-site backup and a drill, so the walk
# cannot drift from what Ferry does. `make test` runs it after
# test-package.sh.
#
# One machine plays both hosts. Each block's first line says where it runs:
#   "# settings"             the walk's shell variables; replaced by the
#                            test's own (hosts 127.0.0.1, free ports, the
#                            test clusters' pool, a fresh image), which must
#                            name exactly the same variables;
#   "# on both hosts"        run once, on this machine;
#   "# on the backup host",
#   "# on the source host"   run in that host's mount namespace, where
#                            /etc/ferry, /etc/ceph, /etc/default and
#                            /var/lib/ferry are the host's own directories
#                            (its /etc/ceph/ceph.conf is its test cluster's).
# There is no systemd here (PID 1 is not systemd): `systemctl enable --now
# UNIT...` runs each installed unit's ExecStart as its User and Group, with
# its EnvironmentFile and StateDirectory, and waits for the log line that
# says it is up, as the section says. The clusters are FERRY_TESTBED's when
# it is set, else two started here (internal/testbed/ceph-site.sh).
# Afterwards the test checks that the backup snapshots read back like their
# sources and that the drill left no scratch image; then it stops what it
# started, purges the package and removes the image and the cephx users it
# made.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
DOC=docs/operations.md
SECTION="## First backup, step by step"
SITE_SH=internal/testbed/ceph-site.sh

fail() { echo "test-walk: FAIL: $*" >&2; exit 1; }
deb=$(ls -t bin/ferry_*.deb 2>/dev/null | head -n1 || true)
[ -n "$deb" ] || fail "no bin/ferry_*.deb; run make package"
[ "$(id -u)" -eq 0 ] || fail "the walk installs the package: run it as root (as make test runs on CI)"
if dpkg-query -W -f='${Status}' ferry 2>/dev/null | grep -q "install ok installed"; then
	fail "a ferry package is already installed on this machine; remove it first (dpkg -P ferry)"
fi

W=$(mktemp -d /tmp/ferry-walk.XXXXXX)
mkdir -p "$W/blocks" "$W/walk" "$W/logs"
: >"$W/pids"
own_clusters=""
installed=""
made_users=()
SRC_CONF="" BAK_CONF=""

rbd_on() { local conf=$1; shift; rbd -c "$conf" "$@"; }
cleanup() {
	local rc=$? pid
	set +e
	while read -r pid; do kill -TERM "$pid" 2>/dev/null; done <"$W/pids"
	for _ in $(seq 100); do
		alive=""
		while read -r pid; do kill -0 "$pid" 2>/dev/null && alive=1; done <"$W/pids"
		[ -z "$alive" ] && break
		sleep 0.1
	done
	while read -r pid; do kill -KILL "$pid" 2>/dev/null; done <"$W/pids"
	if [ "$rc" -ne 0 ]; then
		for log in "$W"/logs/*.log; do
			[ -s "$log" ] && { echo "--- $(basename "$log")" >&2; tail -n 30 "$log" >&2; }
		done
	fi
	[ -n "$installed" ] && dpkg -P ferry >/dev/null 2>&1 </dev/null
	for conf in "$SRC_CONF" "$BAK_CONF"; do
		[ -n "$conf" ] && [ -n "${IMAGE:-}" ] || continue
		for img in $(rbd_on "$conf" ls "$POOL" 2>/dev/null | grep -F "$IMAGE"); do
			rbd_on "$conf" snap purge --no-progress "$POOL/$img" >/dev/null 2>&1
			rbd_on "$conf" rm --no-progress "$POOL/$img" >/dev/null 2>&1
		done
	done
	for conf in "${made_users[@]}"; do ceph -c "$conf" auth del client.ferry >/dev/null 2>&1; done
	if [ -n "$own_clusters" ]; then
		bash "$SITE_SH" down "$W/ceph/source" --purge >/dev/null 2>&1 &
		bash "$SITE_SH" down "$W/ceph/backup" --purge >/dev/null 2>&1 &
		wait
	fi
	rm -rf "$W"
	exit "$rc"
}
trap cleanup EXIT

# The section's blocks, in order.
awk -v dir="$W/blocks" -v section="$SECTION" '
	!inb && /^## / { insec = ($0 == section); next }
	insec && !inb && /^```sh$/ { n++; f = sprintf("%s/%02d.sh", dir, n); inb = 1; printf "" > f; next }
	inb && /^```$/ { inb = 0; close(f); next }
	inb { print > f }
' "$DOC"
blocks=("$W"/blocks/*.sh)
[ -e "${blocks[0]}" ] || fail "$DOC has no \`\`\`sh blocks under \"$SECTION\""

# The clusters.
if [ -n "${FERRY_TESTBED:-}" ]; then
	SRC_CONF=$FERRY_TESTBED/source/ceph.conf BAK_CONF=$FERRY_TESTBED/backup/ceph.conf
else
	own_clusters=1
	start_site() { # DIR MON_PORT DAEMON_PORT_MIN; exit 75: a port was in use, try others
		local off rc
		for off in 0 300 600; do
			bash "$SITE_SH" down "$1" >/dev/null 2>&1 || true
			rc=0
			bash "$SITE_SH" up "$1" $(($2 + off)) $(($3 + off)) $(($3 + off + 99)) --no-mgr --owner-pid $$ >/dev/null || rc=$?
			[ "$rc" -eq 75 ] || return "$rc"
		done
		return 75
	}
	start_site "$W/ceph/source" 37789 37800 &
	s1=$!
	start_site "$W/ceph/backup" 47789 47800 &
	s2=$!
	wait "$s1" || fail "could not start the source cluster"
	wait "$s2" || fail "could not start the backup cluster"
	SRC_CONF=$W/ceph/source/ceph.conf BAK_CONF=$W/ceph/backup/ceph.conf
fi
for conf in "$SRC_CONF" "$BAK_CONF"; do
	if ! ceph -c "$conf" auth get client.ferry >/dev/null 2>&1; then made_users+=("$conf"); fi
done

# The test's settings: the same variables as the section's.
base=$((30000 + RANDOM % 9000))
POOL=ferry # the pool ceph-site.sh creates
IMAGE=walk-$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
cat >"$W/settings.sh" <<EOF
SOURCE_HOST=127.0.0.1
BACKUP_HOST=127.0.0.1
SOURCE_PORT=$base BACKUP_PORT=$((base + 1)) LEAF_PORT=$((base + 2))
POOL=$POOL IMAGE=$IMAGE
EOF
vars() { grep -oE '(^|[[:space:]])[A-Z_]+=' "$1" | tr -d ' \t=' | sort; }

# The source site's VM disk: 24 MiB of data in a 64 MiB image.
head -c $((24 << 20)) /dev/urandom >"$W/seed.bin"
rbd_on "$SRC_CONF" import --no-progress "$W/seed.bin" "$POOL/$IMAGE" >/dev/null
rbd_on "$SRC_CONF" resize --no-progress --size 64M "$POOL/$IMAGE" >/dev/null
rm -f "$W/seed.bin"
cp "$deb" "$W/walk/"

# What each block runs before its own lines: the systemctl stand-in.
cat >"$W/prelude.sh" <<'EOF'
systemctl() {
	{ set +x; } 2>/dev/null # the block's lines are traced, not this stand-in's
	if [ "${1:-} ${2:-}" != "enable --now" ] || [ $# -lt 3 ]; then
		echo "test-walk: systemctl $*: only 'systemctl enable --now UNIT...' is run here (no systemd)" >&2
		return 1
	fi
	shift 2
	local unit
	for unit in "$@"; do start_unit "$unit" || return 1; done
	set -x
}
unit_key() { sed -n "s/^$2=//p" "/lib/systemd/system/$1.service" | tail -n1; }
start_unit() {
	local unit=$1 user group exec envfile statedir mode log ready pid
	[ -f "/lib/systemd/system/$unit.service" ] || { echo "test-walk: no unit $unit" >&2; return 1; }
	user=$(unit_key "$unit" User) group=$(unit_key "$unit" Group) exec=$(unit_key "$unit" ExecStart)
	envfile=$(unit_key "$unit" EnvironmentFile) statedir=$(unit_key "$unit" StateDirectory)
	mode=$(unit_key "$unit" StateDirectoryMode)
	if [ -n "$statedir" ]; then install -d -o "$user" -g "$group" -m "${mode:-0755}" "/var/lib/$statedir"; fi
	log=$WALK_LOGS/$WALK_SITE-$unit.log
	(
		envfile=${envfile#-}
		if [ -n "$envfile" ] && [ -f "$envfile" ]; then set -a; . "$envfile"; set +a; fi
		# systemd passes StateDirectory= to the service as $STATE_DIRECTORY.
		if [ -n "$statedir" ]; then export STATE_DIRECTORY=/var/lib/$statedir; fi
		set +u # systemd makes an unset variable in ExecStart= empty
		eval "argv=($exec)"
		exec setpriv --reuid="$user" --regid="$group" --init-groups -- "${argv[@]}"
	) >"$log" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >>"$WALK_PIDS"
	case $unit in
	ferry-nats) ready="listening on" ;;
	ferry-consumer) ready="consumer running" ;;
	ferry-publisher) ready="publisher running" ;;
	*) echo "test-walk: no readiness line known for $unit" >&2; return 1 ;;
	esac
	for _ in $(seq 300); do
		grep -q "$ready" "$log" && { echo "test-walk: $unit is up (pid $pid)"; return 0; }
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "test-walk: $unit did not log \"$ready\"; its log:" >&2
	cat "$log" >&2
	return 1
}
EOF

# prepare_site NAME CONF: the host's own directories, from this machine's
# after the install.
prepare_site() {
	local d=$W/hosts/$1
	[ -d "$d" ] && return 0
	[ -d /etc/ferry ] && [ -d /var/lib/ferry ] || fail "a block runs on the $1 host before the package is installed"
	mkdir -p "$d/etc-ceph" "$d/etc-default"
	cp -a /etc/ferry "$d/etc-ferry"
	cp -a /var/lib/ferry "$d/var-lib-ferry"
	install -m 0644 "$2" "$d/etc-ceph/ceph.conf"
}

# run_block FILE WHERE: WHERE is "machine", "source" or "backup".
run_block() {
	local file=$1 where=$2 script=$W/run.sh
	{
		echo "set -euo pipefail"
		cat "$W/prelude.sh" "$W/settings.sh"
		echo "set -x"
		cat "$file"
	} >"$script"
	local env=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
		WALK_LOGS="$W/logs" WALK_PIDS="$W/pids" WALK_SITE="$where")
	if [ "$where" = machine ]; then
		(cd "$W/walk" && timeout 600 "${env[@]}" bash "$script")
		return
	fi
	local d=$W/hosts/$where
	(cd "$W/walk" && timeout 600 "${env[@]}" unshare --mount --propagation private bash -c '
		set -e
		mount --bind "$1/etc-ferry" /etc/ferry
		mount --bind "$1/etc-ceph" /etc/ceph
		mount --bind "$1/etc-default" /etc/default
		mount --bind "$1/var-lib-ferry" /var/lib/ferry
		exec bash "$2"' _ "$d" "$script")
}

settings_seen=""
for block in "${blocks[@]}"; do
	first=$(head -n1 "$block")
	n=$(basename "$block" .sh)
	case $first in
	"# settings"*)
		[ "$(vars "$block")" = "$(vars "$W/settings.sh")" ] ||
			fail "block $n of the walk sets $(vars "$block" | tr '\n' ' '); the test sets $(vars "$W/settings.sh" | tr '\n' ' '): keep them the same"
		settings_seen=1
		continue
		;;
	"# on both hosts"*) where=machine ;;
	"# on the backup host"*) where=backup ;;
	"# on the source host"*) where=source ;;
	*) fail "block $n of the walk starts with \"$first\", not with where it runs (# on the backup host, # on the source host, # on both hosts, # settings)" ;;
	esac
	[ -n "$settings_seen" ] || fail "block $n comes before the settings block"
	echo "test-walk: block $n, $where:"
	case $where in
	source) prepare_site source "$SRC_CONF" ;;
	backup) prepare_site backup "$BAK_CONF" ;;
	machine) grep -q 'dpkg -i' "$block" && installed=1 ;;
	esac
	run_block "$block" "$where" 2>&1 | sed 's/^/    /' || fail "block $n ($first) failed"
done

# The walk's outcome: the backup snapshots read back like their sources,
# and the drill left no scratch image.
snaps=$(rbd_on "$BAK_CONF" snap ls --format json "$POOL/$IMAGE" | grep -o '"name":"ferry-[^"]*"' | cut -d'"' -f4 || true)
[ -n "$snaps" ] || fail "the backup image holds no Ferry snapshot after the walk"
newest=$(tail -n1 <<<"$snaps")
a=$(rbd_on "$SRC_CONF" export --no-progress "$POOL/$IMAGE@$newest" - | sha256sum)
b=$(rbd_on "$BAK_CONF" export --no-progress "$POOL/$IMAGE@$newest" - | sha256sum)
[ "$a" = "$b" ] || fail "$POOL/$IMAGE@$newest differs between the sites"
! rbd_on "$BAK_CONF" ls "$POOL" | grep -q "^$IMAGE\.ferry-drill-" || fail "the drill left a scratch image: $(rbd_on "$BAK_CONF" ls "$POOL" | grep "^$IMAGE\.")"
echo "test-walk: ${#blocks[@]} blocks of \"$SECTION\" ran; $POOL/$IMAGE@$newest is byte-identical at both sites"
