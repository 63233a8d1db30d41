#!/usr/bin/env bash
# ceph-site.sh: start and stop a single-host Ceph micro-cluster (one "site") for tests and
# development. This is the only implementation: the Go package internal/testbed embeds it and
# devenv.sh calls it.
#
#   ceph-site.sh up DIR MON_PORT BIND_PORT_MIN BIND_PORT_MAX [--no-mgr] [--owner-pid PID]
#       Creates a fresh cluster under DIR (1 mon on 127.0.0.1 with msgr v2 on MON_PORT and v1 on
#       MON_PORT+1, 1 bluestore OSD on the sparse file DIR/osd.0.block, 1 mgr unless --no-mgr;
#       cephx on), creates the rbd pool "ferry" and waits until an image can be created in it.
#       Prints only DIR/ceph.conf on stdout; progress goes to stderr.
#       With --owner-pid, a watcher stops the daemons (and removes the OSD's block file) when
#       process PID exits, so a crashed test run does not leave a cluster behind.
#       Exit status: 0 ready, 75 a port was already in use (retry with other ports), 1 other error.
#   ceph-site.sh down DIR [--purge]
#       Stops every daemon of DIR by its pid file (SIGTERM, then SIGKILL after ~10 s). Idempotent.
#       --purge then removes DIR.
#
# DIR must be empty, absent, or a site made by this script whose daemons are stopped.
set -euo pipefail
unset CEPH_ARGS

POOL=ferry
PG_NUM=8
BLOCK_SIZE=$((100 * 1024 * 1024 * 1024)) # apparent size; costs only what is written
TIMEOUT=60                                 # seconds for the whole "up"
MARKER=.ceph-site                          # marks a directory made by this script
EX_PORT_IN_USE=75

log() { echo "ceph-site: $*" >&2; }
# trace: progress detail with a timestamp, only when CEPH_SITE_VERBOSE=1.
trace() { [ "${CEPH_SITE_VERBOSE:-0}" != 1 ] || echo "ceph-site: $(date +%T.%3N) $*" >&2; }

usage() {
	echo "usage: $0 up DIR MON_PORT BIND_PORT_MIN BIND_PORT_MAX [--no-mgr] [--owner-pid PID]" >&2
	echo "       $0 down DIR [--purge]" >&2
	exit 2
}

# pid_of NAME: the pid in DIR/run/NAME.pid if that process is alive and is a daemon of this
# site (its command line names this site's ceph.conf); guards against reused pids.
pid_of() {
	local f="$DIR/run/$1.pid" pid
	[ -s "$f" ] || return 1
	pid=$(cat "$f" 2>/dev/null) || return 1
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	[ -r "/proc/$pid/cmdline" ] || return 1
	local arg
	while IFS= read -r -d '' arg; do
		case "$arg" in "$DIR" | "$DIR"/*)
			echo "$pid"
			return 0
			;;
		esac
	done <"/proc/$pid/cmdline"
	return 1
}

# alive PID: the process exists and is not a zombie.
alive() {
	local st
	st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# wait_gone TRIES PID...: wait up to TRIES*0.1 s until none of the pids is alive.
wait_gone() {
	local tries=$1 pid i alive
	shift
	for ((i = 0; i < tries; i++)); do
		alive=0
		for pid in "$@"; do
			alive "$pid" && alive=1
		done
		[ "$alive" -eq 0 ] && return 0
		sleep 0.1
	done
}

# stop_daemons NAME...: SIGTERM to each, wait up to ~10 s for all, then SIGKILL the rest.
stop_daemons() {
	local name pid pids=() i
	for name in "$@"; do
		if pid=$(pid_of "$name"); then
			kill -TERM "$pid" 2>/dev/null || true
			pids+=("$pid")
		fi
	done
	[ "${#pids[@]}" -gt 0 ] || return 0
	wait_gone 100 "${pids[@]}" # 10 s for a graceful stop
	for pid in "${pids[@]}"; do
		if alive "$pid"; then
			log "pid $pid did not stop after SIGTERM; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
	wait_gone 50 "${pids[@]}"
	for name in "$@"; do rm -f "$DIR/run/$name.pid"; done
}

do_down() {
	local purge=0
	[ "${1:-}" = --purge ] && purge=1
	[ -d "$DIR" ] || return 0
	# The watcher first, so it does not race with us; but never ourselves (the watcher calls down).
	local wpid
	if wpid=$(pid_of watch) && [ "$wpid" != "$$" ] && [ "$wpid" != "${WATCHER_PID:-}" ]; then
		kill -TERM "$wpid" 2>/dev/null || true
		rm -f "$DIR/run/watch.pid"
	fi
	# Clients and OSD first, while the mon can still take the OSD's "going down" message.
	stop_daemons mgr.x osd.0
	stop_daemons mon.a
	if [ "$purge" -eq 1 ]; then
		if [ -e "$DIR/$MARKER" ]; then
			rm -rf "$DIR"
		else
			log "not purging $DIR: it was not made by ceph-site.sh"
		fi
	fi
}

# The watcher: stop the site when the owner process goes away.
do_watch() {
	local owner=$1
	WATCHER_PID=$$
	while alive "$owner"; do sleep 1; done
	[ -d "$DIR" ] || exit 0
	log "owner process $owner exited; stopping $DIR"
	do_down
	rm -f "$DIR/osd.0.block"
}

# fail MESSAGE [DAEMON...]: report, show the end of the daemons' logs (default: all), stop
# whatever was started, exit (75 if a port was in use).
fail() {
	local msg=$1 name f
	shift
	log "ERROR: $msg"
	[ $# -gt 0 ] || set -- mon.a osd.0 mgr.x
	for name in "$@"; do
		f="$DIR/log/$name.log"
		[ -s "$f" ] || f="$DIR/log/$name.out"
		[ -s "$f" ] || continue
		echo "---- end of $f" >&2
		grep -v -e 'rocksdb:' -e '^[[:space:]]*$' "$f" | tail -n 10 >&2
	done
	local code=1
	if grep -qsE 'Address already in use|unable to bind' "$DIR"/log/*.log "$DIR"/log/*.out; then
		log "a port was already in use: retry with other ports"
		code=$EX_PORT_IN_USE
	fi
	do_down >/dev/null 2>&1 || true
	exit "$code"
}

START=$SECONDS
remaining() {
	local r=$((TIMEOUT - (SECONDS - START)))
	[ "$r" -gt 0 ] || r=1
	echo "$r"
}

# run DESCRIPTION CMD...: run a step bounded by the time left; print its stdout; on failure
# show its stderr and give up.
run() {
	local what=$1 out err="$DIR/log/step.err"
	shift
	trace "$what"
	if ! out=$(timeout "$(remaining)" "$@" 2>"$err" </dev/null); then
		tail -n 20 "$err" >&2
		fail "$what failed (or timed out; ${TIMEOUT}s in total): $*"
	fi
	[ -z "$out" ] || echo "$out"
}

# start NAME CMD...: start a daemon that forks into the background once it is up; its own
# output (before it logs to DIR/log/NAME.log) goes to DIR/log/NAME.out.
start() {
	local name=$1
	shift
	trace "start $name"
	if ! timeout "$(remaining)" "$@" </dev/null >>"$DIR/log/$name.out" 2>&1; then
		fail "starting $name failed (or timed out): $*" "$name"
	fi
}

port_ok() { [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }

do_up() {
	local mon_port=$1 bind_min=$2 bind_max=$3 with_mgr=1 owner=""
	shift 3
	while [ $# -gt 0 ]; do
		case "$1" in
		--no-mgr) with_mgr=0 ;;
		--owner-pid) owner=${2:?--owner-pid needs a pid}; shift ;;
		*) usage ;;
		esac
		shift
	done
	port_ok "$mon_port" && port_ok "$((mon_port + 1))" && port_ok "$bind_min" && port_ok "$bind_max" ||
		{ log "ports must be numbers in 1-65535"; exit 2; }
	[ "$bind_min" -le "$bind_max" ] || { log "BIND_PORT_MIN > BIND_PORT_MAX"; exit 2; }
	if [ "$mon_port" -le "$bind_max" ] && [ "$((mon_port + 1))" -ge "$bind_min" ]; then
		log "MON_PORT and MON_PORT+1 must lie outside BIND_PORT_MIN..BIND_PORT_MAX"; exit 2
	fi
	local b
	for b in ceph-mon ceph-osd ceph-authtool monmaptool ceph rbd; do
		command -v "$b" >/dev/null || { log "$b not found: run .ci/install-deps.sh"; exit 1; }
	done
	[ "$with_mgr" -eq 0 ] || command -v ceph-mgr >/dev/null || { log "ceph-mgr not found: run .ci/install-deps.sh"; exit 1; }

	# A fresh directory, or one of ours whose daemons are all stopped.
	mkdir -p "$DIR"
	if [ -n "$(ls -A "$DIR")" ]; then
		[ -e "$DIR/$MARKER" ] || { log "$DIR is not empty and was not made by ceph-site.sh"; exit 1; }
		local n
		for n in mon.a osd.0 mgr.x watch; do
			if pid_of "$n" >/dev/null; then
				log "$DIR is running ($n); run: $0 down $DIR"
				exit 1
			fi
		done
		find "$DIR" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
	fi
	touch "$DIR/$MARKER"
	mkdir -p "$DIR"/{run,log,crash,mon,osd/ceph-0,mgr/ceph-x}

	local sock="$DIR/run/ceph-mon.a.asok"
	[ "${#sock}" -lt 100 ] || log "warning: $DIR is a long path; admin sockets may not work"

	local fsid osd_uuid
	fsid=$(uuidgen 2>/dev/null || cat /proc/sys/kernel/random/uuid)
	osd_uuid=$(uuidgen 2>/dev/null || cat /proc/sys/kernel/random/uuid)
	local mon_addr="[v2:127.0.0.1:$mon_port,v1:127.0.0.1:$((mon_port + 1))]"

	cat >"$DIR/ceph.conf" <<-CONF
	# Single-host test cluster made by ceph-site.sh; do not edit, it is recreated on "up".
	[global]
	fsid = $fsid
	mon host = $mon_addr
	mon initial members = a
	public addr = 127.0.0.1
	cluster addr = 127.0.0.1
	ms bind ipv4 = true
	ms bind ipv6 = false
	ms bind port min = $bind_min
	ms bind port max = $bind_max
	ms bind retry count = 2
	ms bind retry delay = 1
	auth cluster required = cephx
	auth service required = cephx
	auth client required = cephx
	auth allow insecure global id reclaim = false
	run dir = $DIR/run
	crash dir = $DIR/crash
	osd pool default size = 1
	osd pool default min size = 1
	osd pool default pg num = $PG_NUM
	osd pool default pgp num = $PG_NUM
	osd pool default pg autoscale mode = off
	osd crush chooseleaf type = 0
	mon allow pool size one = true
	mon allow pool delete = true
	mon warn on pool no redundancy = false
	mon data avail warn = 2
	mon data avail crit = 1

	[mon]
	mon data = $DIR/mon/\$cluster-\$id
	keyring = $DIR/mon/\$cluster-\$id/keyring
	# Batch map changes for 0.1 s instead of 1 s: each step of the start waits for one.
	paxos propose interval = 0.1
	mon cluster log file = $DIR/log/\$cluster.\$channel.log
	log file = $DIR/log/\$name.log
	pid file = $DIR/run/\$name.pid
	admin socket = $DIR/run/\$cluster-\$name.asok

	[osd]
	osd data = $DIR/osd/\$cluster-\$id
	keyring = $DIR/osd/\$cluster-\$id/keyring
	osd journal = $DIR/osd/\$cluster-\$id/journal
	osd objectstore = bluestore
	bluestore block path = $DIR/osd.\$id.block
	bluestore block create = true
	bluestore block size = $BLOCK_SIZE
	bluestore block db create = false
	bluestore block wal create = false
	bluestore fsck on mkfs = false
	# Closing a block device waits for its aio thread's poll (250 ms by default); the OSD opens
	# and closes its device several times while it starts.
	bdev aio poll ms = 20
	osd memory target = 1073741824
	log file = $DIR/log/\$name.log
	pid file = $DIR/run/\$name.pid
	admin socket = $DIR/run/\$cluster-\$name.asok

	[mgr]
	mgr data = $DIR/mgr/\$cluster-\$id
	keyring = $DIR/mgr/\$cluster-\$id/keyring
	mgr initial modules = iostat
	log file = $DIR/log/\$name.log
	pid file = $DIR/run/\$name.pid
	admin socket = $DIR/run/\$cluster-\$name.asok

	[client]
	keyring = $DIR/ceph.client.admin.keyring
	client mount timeout = 30
	rados osd op timeout = 60
	rados mon op timeout = 30
	rbd default features = layering,exclusive-lock,object-map,fast-diff,deep-flatten
	CONF
	local conf="$DIR/ceph.conf"
	log "up $DIR (mon 127.0.0.1:$mon_port, ports $bind_min-$bind_max)"

	# Keys: mon., client.admin and mgr.x go into the mon's initial keyring (mkfs imports them);
	# osd.0 gets its key through "ceph osd new".
	local monkr="$DIR/mon.keyring"
	run "mon key" ceph-authtool --create-keyring "$monkr" --gen-key -n mon. --cap mon 'allow *' >/dev/null
	run "admin key" ceph-authtool --create-keyring "$DIR/ceph.client.admin.keyring" --gen-key -n client.admin \
		--cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
	run "mgr key" ceph-authtool --create-keyring "$DIR/mgr/ceph-x/keyring" --gen-key -n mgr.x \
		--cap mon 'allow profile mgr' --cap osd 'allow *' --cap mds 'allow *' >/dev/null
	run "import admin key" ceph-authtool "$monkr" --import-keyring "$DIR/ceph.client.admin.keyring" >/dev/null
	run "import mgr key" ceph-authtool "$monkr" --import-keyring "$DIR/mgr/ceph-x/keyring" >/dev/null
	chmod 600 "$DIR"/*.keyring "$monkr" "$DIR/mgr/ceph-x/keyring"
	local osd_key
	osd_key=$(ceph-authtool --gen-print-key)
	run "osd key" ceph-authtool --create-keyring "$DIR/osd/ceph-0/keyring" -n osd.0 --add-key "$osd_key" >/dev/null
	printf '{"cephx_secret": "%s"}\n' "$osd_key" >"$DIR/osd/ceph-0/secret.json"

	run "monmap" monmaptool --create --fsid "$fsid" --addv a "$mon_addr" --enable-all-features \
		--set-min-mon-release pacific "$DIR/monmap" >/dev/null
	run "mon mkfs" ceph-mon -c "$conf" --mkfs -i a --monmap "$DIR/monmap" --keyring "$monkr" >/dev/null

	# The OSD's mkfs needs no mon: run it in the background while the mon starts.
	timeout "$(remaining)" ceph-osd -c "$conf" --no-mon-config --mkfs -i 0 --osd-uuid "$osd_uuid" \
		</dev/null >"$DIR/log/osd.0.mkfs.out" 2>&1 &
	local mkfs_pid=$!

	start mon.a ceph-mon -c "$conf" -i a
	if [ "$with_mgr" -eq 1 ]; then
		start mgr.x ceph-mgr -c "$conf" -i x
	fi

	local ceph=(ceph -c "$conf" --connect-timeout "$(remaining)")
	local id
	id=$(run "ceph osd new" "${ceph[@]}" osd new "$osd_uuid" -i "$DIR/osd/ceph-0/secret.json")
	[ "$id" = 0 ] || fail "ceph osd new returned id '$id', expected 0"
	rm -f "$DIR/osd/ceph-0/secret.json"
	run "create pool $POOL" "${ceph[@]}" osd pool create "$POOL" "$PG_NUM" "$PG_NUM" >/dev/null
	trace "wait for osd mkfs"
	wait "$mkfs_pid" || fail "ceph-osd --mkfs failed (or timed out)" osd.0.mkfs
	start osd.0 ceph-osd -c "$conf" -i 0

	# Blocks until the pool's PGs are active, i.e. the OSD is up.
	run "rbd pool init $POOL" rbd -c "$conf" pool init "$POOL" >/dev/null
	run "rbd ls $POOL" rbd -c "$conf" ls "$POOL" >/dev/null
	run "create probe image" rbd -c "$conf" create "$POOL/ceph-site-probe" --size 4M >/dev/null
	run "remove probe image" rbd -c "$conf" rm --no-progress "$POOL/ceph-site-probe" >/dev/null

	local n
	for n in mon.a osd.0; do pid_of "$n" >/dev/null || fail "$n is not running"; done
	[ "$with_mgr" -eq 0 ] || pid_of mgr.x >/dev/null || fail "mgr.x is not running"

	if [ -n "$owner" ]; then
		setsid bash "$0" watch "$DIR" "$owner" </dev/null >>"$DIR/log/watch.out" 2>&1 &
		echo $! >"$DIR/run/watch.pid"
	fi
	log "ready in $((SECONDS - START))s: $conf"
	echo "$conf"
}

[ $# -ge 2 ] || usage
CMD=$1
DIR=$2
shift 2
case "$DIR" in /*) ;; *) DIR="$PWD/$DIR" ;; esac
DIR=${DIR%/}

case "$CMD" in
up)
	[ $# -ge 3 ] || usage
	do_up "$@"
	;;
down) do_down "${1:-}" ;;
watch)
	[ $# -eq 1 ] || usage
	do_watch "$1"
	;;
*) usage ;;
esac
