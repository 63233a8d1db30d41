#!/usr/bin/env bash
# devenv.sh: a long-lived pair of Ceph sites (source and backup) for development.
#
#   devenv.sh up [DIR]     start both sites in parallel (default DIR: .devenv in the current
#                          directory) and print the environment to use them; if they already run,
#                          only print it
#   devenv.sh down [DIR]   stop both sites (their data stays; "up" recreates them empty)
#
# Fixed ports: source mon 16789 (v2) / 16790 (v1), daemons 16800-16899;
#              backup mon 26789 (v2) / 26790 (v1), daemons 26800-26899.
# Tests reuse the pair when FERRY_TESTBED names DIR (see testbed.Main).
set -euo pipefail

SITE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/ceph-site.sh"
CMD=${1:-}
DIR=${2:-.devenv}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

# running SITEDIR: the site's mon answers.
running() {
	[ -s "$1/ceph.conf" ] && [ -s "$1/run/mon.a.pid" ] && kill -0 "$(cat "$1/run/mon.a.pid")" 2>/dev/null &&
		timeout 10 rbd -c "$1/ceph.conf" ls ferry >/dev/null 2>&1
}

print_env() {
	cat <<-EOF
	# source site (for the backup site use: rbd -c $DIR/backup/ceph.conf ...)
	export CEPH_CONF=$DIR/source/ceph.conf
	# export CEPH_CONF=$DIR/backup/ceph.conf
	export FERRY_TESTBED=$DIR
	EOF
}

case "$CMD" in
up)
	pids=()
	for s in source:16789:16800:16899 backup:26789:26800:26899; do
		IFS=: read -r name mon min max <<<"$s"
		if running "$DIR/$name"; then
			echo "devenv: $name already running" >&2
			continue
		fi
		bash "$SITE" down "$DIR/$name" >/dev/null 2>&1 || true
		bash "$SITE" up "$DIR/$name" "$mon" "$min" "$max" >/dev/null &
		pids+=("$!")
	done
	rc=0
	for p in "${pids[@]}"; do wait "$p" || rc=1; done
	if [ "$rc" -ne 0 ]; then
		echo "devenv: a site failed to start (see above); stopping both" >&2
		bash "$SITE" down "$DIR/source" || true
		bash "$SITE" down "$DIR/backup" || true
		exit 1
	fi
	print_env
	;;
down)
	bash "$SITE" down "$DIR/source" &
	bash "$SITE" down "$DIR/backup" &
	wait
	;;
*)
	echo "usage: $0 up|down [DIR]" >&2
	exit 2
	;;
esac
