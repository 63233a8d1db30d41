#!/usr/bin/env bash
# make demo: a real backup, end to end, on this one machine.
#
# Starts two independent Ceph clusters (a source site and a backup site) and,
# from the setup `ferry init` writes, each site's NATS JetStream server, joined
# by a TLS leafnode, and a Ferry consumer; every Ferry process connects with
# its own role's certificate and may use only its role's subjects, and the
# sites sign their messages with the keys ferry init wrote and act only on
# the other site's (docs/security.md). Writes data into a demo image; runs a
# full backup and two incrementals with `ferry backup`; checks that every
# backup snapshot reads back byte for byte like its source snapshot; shows
# the pruned source snapshots and the status. Everything it started is
# stopped at the end; its files stay in .demo/ for a look.
set -euo pipefail
cd "$(dirname "$0")/.."
FERRY=${FERRY:-bin/ferry}
# The demo passes everything on the command line: a ferry.yaml installed on
# this machine must not change it.
export FERRY_CONFIG=/dev/null
DIR=${DEMO_DIR:-.demo}
SITE=internal/testbed/ceph-site.sh
# The source site's client port; the backup site's and its leafnode port follow.
NATS_PORT=${DEMO_NATS_PORT:-34222}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

rm -rf "$DIR"
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
SRC="-c $DIR/source/ceph.conf"
DST="-c $DIR/backup/ceph.conf"
TLS=$DIR/tls
# Each Ferry process takes its role's configuration file from ferry init.
AS_CONSUMER="--config $TLS/consumer.yaml"
AS_PUBLISHER="--config $TLS/publisher.yaml"
AS_OPERATOR="--config $TLS/operator.yaml"

pids=()
cleanup() {
	set +e
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	bash "$SITE" down "$DIR/source" >/dev/null 2>&1 &
	bash "$SITE" down "$DIR/backup" >/dev/null 2>&1 &
	wait
}
trap cleanup EXIT

# start_site DIR MON_PORT DAEMON_PORT_MIN: these fixed ports lie in Linux's ephemeral range, so a
# client socket may hold one for a moment; on exit 75 (a port in use) try two other sets.
start_site() {
	local dir=$1 mon=$2 min=$3 off rc
	for off in 0 300 600; do
		if [ "$off" -ne 0 ]; then
			echo "demo: a port of $(basename "$dir") was in use; trying ports $((mon + off)) and $((min + off))-$((min + off + 99))" >&2
			bash "$SITE" down "$dir" >/dev/null 2>&1 || true
		fi
		rc=0
		bash "$SITE" up "$dir" $((mon + off)) $((min + off)) $((min + off + 99)) >/dev/null || rc=$?
		[ "$rc" -eq 75 ] || return "$rc"
	done
	return 75
}

say "Starting the source site and the backup site (two Ceph clusters)"
start_site "$DIR/source" 36789 36800 &
s1=$!
start_site "$DIR/backup" 46789 46800 &
s2=$!
wait "$s1"
wait "$s2"
echo "source: $DIR/source/ceph.conf   backup: $DIR/backup/ceph.conf"

say "Writing a secure two-site setup with ferry init (CA, certificates, signing keys, servers' and roles' configuration)"
"$FERRY" init --out "$TLS" --source-host 127.0.0.1 --backup-host 127.0.0.1 --listen-host 127.0.0.1 \
	--source-port "$NATS_PORT" --backup-port $((NATS_PORT + 1)) --leafnode-port $((NATS_PORT + 2)) | tr '\n' ' '
echo

# wait_log FILE TEXT: wait up to 10 s for TEXT in FILE.
wait_log() {
	for _ in $(seq 100); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "demo: no \"$2\" in $1 after 10 s:" >&2
	cat "$1" >&2
	exit 1
}

say "Starting both sites' NATS JetStream servers, joined by a TLS leafnode, and the backup site's consumer"
"$FERRY" nats-server --server-config "$TLS/backup-nats.conf" --store "$DIR/nats-backup" 2>"$DIR/nats-backup.log" &
pids+=("$!")
wait_log "$DIR/nats-backup.log" listening
"$FERRY" nats-server --server-config "$TLS/source-nats.conf" --store "$DIR/nats-source" 2>"$DIR/nats-source.log" &
pids+=("$!")
wait_log "$DIR/nats-source.log" listening
wait_log "$DIR/nats-source.log" "Leafnode connection created"
"$FERRY" consumer run $AS_CONSUMER $DST --site demo-backup 2>"$DIR/consumer.log" &
pids+=("$!")
wait_log "$DIR/consumer.log" "consumer running"
echo "source site: tls://127.0.0.1:$NATS_PORT, backup site: tls://127.0.0.1:$((NATS_PORT + 1))"
echo "logs: $DIR/nats-source.log, $DIR/nats-backup.log, $DIR/consumer.log"

IMG=ferry/demo-vm
say "Writing 192 MiB of random data into a 1 GiB image $IMG at the source site"
head -c $((192 << 20)) /dev/urandom >"$DIR/seed.bin"
rbd $SRC import --no-progress "$DIR/seed.bin" "$IMG"
rm -f "$DIR/seed.bin"
rbd $SRC resize --no-progress --size 1G "$IMG"

# le64 N: N as 8 little-endian bytes.
le64() {
	local n=$1 i out=""
	for i in 0 1 2 3 4 5 6 7; do
		out+=$(printf '\\x%02x' $(((n >> (8 * i)) & 255)))
	done
	printf "$out"
}

# scribble COUNT LEN: write COUNT blocks of LEN random bytes at random,
# LEN-aligned, ascending offsets of the source image, as one hand-made
# "rbd diff v1" stream applied with rbd import-diff (no snapshot made).
scribble() {
	local count=$1 len=$2 size slots
	size=$(rbd $SRC info --format json "$IMG" | sed -n 's/.*"size": *\([0-9]*\).*/\1/p')
	slots=$((size / len))
	{
		printf 'rbd diff v1\n'
		printf 's'
		le64 "$size"
		for off in $(shuf -i 0-$((slots - 1)) -n "$count" | sort -n); do
			printf 'w'
			le64 $((off * len))
			le64 "$len"
			head -c "$len" /dev/urandom
		done
		printf 'e'
	} | rbd $SRC import-diff --no-progress - "$IMG"
}

verify() {
	local snap
	snap=$(rbd $SRC snap ls "$IMG" | awk '/ ferry-/{print $2}' | tail -n 1)
	local a b
	a=$(rbd $SRC export --no-progress "$IMG@$snap" - | sha256sum | cut -c1-64)
	b=$(rbd $DST export --no-progress "$IMG@$snap" - | sha256sum | cut -c1-64)
	if [ "$a" != "$b" ]; then
		echo "MISMATCH: $IMG@$snap source sha256 $a, backup sha256 $b" >&2
		exit 1
	fi
	echo "verified: $IMG@$snap is byte-identical at both sites (sha256 ${a:0:16}...)"
}

say "Backup 1: full"
"$FERRY" backup $AS_PUBLISHER $SRC --no-progress "$IMG"
verify

say "Writing 32 MiB of new random data (512 blocks of 64 KiB), then backup 2: incremental"
scribble 512 $((64 << 10))
"$FERRY" backup $AS_PUBLISHER $SRC --no-progress "$IMG"
verify

say "Writing 8 MiB more (512 blocks of 16 KiB), then backup 3: incremental"
scribble 512 $((16 << 10))
"$FERRY" backup $AS_PUBLISHER $SRC --no-progress "$IMG"
verify

say "Snapshots: the source keeps only its newest confirmed one; the backup site keeps every backup"
echo "source site:"
rbd $SRC snap ls "$IMG"
echo "backup site:"
rbd $DST snap ls "$IMG"

say "ferry status"
"$FERRY" status $AS_OPERATOR

if grep -h Violation "$DIR"/nats-*.log; then
	echo "demo: a Ferry process was refused something its role needs (above)" >&2
	exit 1
fi
if grep -h "messages are not authenticated" "$DIR/consumer.log"; then
	echo "demo: the consumer trusts no source site key: consumer.yaml of ferry init should name it" >&2
	exit 1
fi

say "Demo complete: 1 full + 2 incremental backups between two TLS sites, signed, each verified byte for byte"
