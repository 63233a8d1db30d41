#!/usr/bin/env bash
# Checks the .deb that `make package` built: metadata, file list, and the
# installed binary. `make test` runs it. There is no systemd on the build
# machines (PID 1 is not systemd), so the units are checked with
# `systemd-analyze verify` against the unpacked tree when that tool exists,
# else syntactically. Maintainer scripts are checked with `sh -n`, not run:
# the package is unpacked with `dpkg -x` into a throwaway root (dpkg --root
# would run postinst inside a root that has no shell or adduser).
set -euo pipefail
cd "$(dirname "$0")/.."

deb=$(ls -t bin/ferry_*.deb 2>/dev/null | head -n1 || true)
[ -n "$deb" ] || { echo "test-package: no bin/ferry_*.deb; run make package" >&2; exit 1; }
fail() { echo "test-package: FAIL: $*" >&2; exit 1; }
passed=0
ok() { passed=$((passed + 1)); }

info=$(dpkg-deb --info "$deb")
for field in "Package: ferry" "Architecture: amd64" "Section: admin"; do
	grep -q "^ *$field\$" <<<"$info" || fail "dpkg-deb --info lacks '$field'"
	ok
done
depends=$(dpkg-deb -f "$deb" Depends)
for dep in librbd1 librados2 adduser; do
	grep -qw "$dep" <<<"$depends" || fail "Depends ($depends) lacks $dep"
	ok
done
grep -q "postinst" <<<"$info" || fail "no postinst in the control archive"
ok
grep -qx "/etc/ferry/ferry.yaml" < <(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles) || fail "ferry.yaml is not a conffile"
ok

contents=$(dpkg-deb --contents "$deb")
for path in ./usr/bin/ferry ./etc/ferry/ferry.yaml \
	./lib/systemd/system/ferry-nats.service ./lib/systemd/system/ferry-publisher.service \
	./lib/systemd/system/ferry-consumer.service ./lib/systemd/system/ferry-agent.service \
	./usr/share/doc/ferry/operations.md ./usr/share/doc/ferry/grafana-dashboard.json; do
	grep -q " $path\$" <<<"$contents" || fail "the package lacks $path"
	ok
done
grep -q '^-rwxr-xr-x root/root .* ./usr/bin/ferry$' <<<"$contents" || fail "/usr/bin/ferry is not root-owned 0755"
ok

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg -x "$deb" "$root"
ctrl="$root/DEBIAN"
dpkg-deb -e "$deb" "$ctrl"
for script in postinst prerm; do
	sh -n "$ctrl/$script" || fail "$script does not parse"
	ok
done

# The installed binary runs and knows its commands.
help=$("$root/usr/bin/ferry" --help)
for cmd in publisher consumer status config nats-server backup; do
	grep -qE "^  $cmd( |$)" <<<"$help" || fail "ferry --help does not list $cmd"
	ok
done
# The installed example configuration parses; `config check` must only
# complain about the Ceph files this machine lacks, naming each key.
set +e
check=$(FERRY_CONFIG= "$root/usr/bin/ferry" config check --config "$root/etc/ferry/ferry.yaml" 2>&1)
rc=$?
set -e
if [ "$rc" -eq 0 ]; then
	grep -q "OK" <<<"$check" || fail "config check: $check"
else
	bad=$(grep -v -e "cannot read /etc/ceph/" -e "problem(s) in the configuration" <<<"$check" || true)
	[ -z "$bad" ] || fail "config check of the installed example: $bad"
	grep -q "ferry.yaml:[0-9]*: ceph.source.keyring: cannot read" <<<"$check" || fail "config check does not name file, line and key: $check"
fi
ok
"$root/usr/bin/ferry" status --streams --help >/dev/null || fail "ferry status --streams --help"
ok

# Units: every ExecStart names the installed binary and an existing command.
for unit in "$root"/lib/systemd/system/ferry-*.service; do
	name=$(basename "$unit")
	for section in '\[Unit\]' '\[Service\]' '\[Install\]'; do
		grep -q "^$section\$" "$unit" || fail "$name lacks $section"
	done
	exec_line=$(grep '^ExecStart=' "$unit") || fail "$name has no ExecStart"
	# shellcheck disable=SC2206
	argv=(${exec_line#ExecStart=})
	[ "${argv[0]}" = /usr/bin/ferry ] || fail "$name runs ${argv[0]}"
	sub=("${argv[1]}")
	[[ "${argv[2]:-}" == -* || -z "${argv[2]:-}" ]] || sub+=("${argv[2]}")
	"$root/usr/bin/ferry" "${sub[@]}" --help >/dev/null 2>&1 || fail "$name: ferry ${sub[*]} does not exist"
	grep -Eq '^(Restart|User|After|WantedBy)=' "$unit" || fail "$name lacks Restart/User/After/WantedBy"
	ok
done
if command -v systemd-analyze >/dev/null; then
	# verify loads each unit from the unpacked root. Without systemd as PID 1
	# it also complains that sysinit.target is missing, so only the messages
	# of a broken unit file fail the test (the broken unit proves they show).
	unit_errors="unknown (key|section)|missing '='|failed to parse|invalid|assignment outside|bad unit file setting|refusing"
	printf '[Service]\nExecStrat=/usr/bin/ferry\n' >"$root/lib/systemd/system/ferry-broken.service"
	out=$(systemd-analyze verify --root="$root" "$root/lib/systemd/system/ferry-broken.service" 2>&1 || true)
	grep -Eiq "$unit_errors" <<<"$out" || fail "systemd-analyze verify does not flag a broken unit: $out"
	rm "$root/lib/systemd/system/ferry-broken.service"
	for unit in "$root"/lib/systemd/system/ferry-*.service; do
		out=$(systemd-analyze verify --root="$root" "$unit" 2>&1 || true)
		if grep -Ei "$unit_errors" <<<"$out"; then
			fail "systemd-analyze verify $(basename "$unit"): $out"
		fi
		ok
	done
else
	echo "test-package: systemd-analyze not installed; units checked syntactically only" >&2
fi

# A real install on this (throwaway CI) machine: dpkg runs the maintainer
# scripts, then the NATS unit's ExecStart runs as the unit's user the way
# systemd would start it (there is no systemd here; setpriv execs it in
# place, as systemd does), answers a client, and stops on SIGTERM; then the
# package is removed again.
[ "$(id -u)" -eq 0 ] || fail "installing the package needs root (run make test as root, as CI does)"
if dpkg-query -W -f='${Status}' ferry 2>/dev/null | grep -q "install ok installed"; then
	fail "a ferry package is already installed on this machine; remove it first (dpkg -P ferry)"
fi
DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" >/dev/null || fail "dpkg -i $deb failed"
trap 'dpkg -P ferry >/dev/null 2>&1 || true' EXIT
id ferry >/dev/null 2>&1 || fail "postinst did not create the user ferry"
[ -d /var/lib/ferry ] || fail "postinst did not create /var/lib/ferry"
[ "$(stat -c %U /var/lib/ferry)" = ferry ] || fail "/var/lib/ferry is not owned by ferry"
ok
store=$(runuser -u ferry -- mktemp -d /var/lib/ferry/test-nats.XXXXXX)
port=$(( 20000 + RANDOM % 10000 ))
exec_start=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/ferry-nats.service)
exec_start=${exec_start//\$FERRY_NATS_SERVER_ARGS/}        # nothing in /etc/default here
exec_start=${exec_start//\/var\/lib\/ferry\/nats/$store} # a store of the test's own
# shellcheck disable=SC2086
setpriv --reuid=ferry --regid=ferry --init-groups -- $exec_start --listen "127.0.0.1:$port" 2>"$store.log" &
nats_pid=$!
up=""
for _ in $(seq 50); do
	# A NATS server greets every client with an INFO line.
	if timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && head -c 4 <&3" 2>/dev/null | grep -q INFO; then up=1; break; fi
	sleep 0.1
done
[ -n "$up" ] || { kill "$nats_pid" 2>/dev/null; fail "the installed ferry-nats command did not answer: $(cat "$store.log")"; }
ok
kill -TERM "$nats_pid"
wait "$nats_pid" || fail "ferry nats-server did not stop cleanly on SIGTERM: $(cat "$store.log")"
ok
rm -rf "$store" "$store.log"
dpkg -P ferry >/dev/null || fail "dpkg -P ferry failed"
[ ! -e /usr/bin/ferry ] && [ ! -e /etc/ferry/ferry.yaml ] || fail "dpkg -P left files behind"
trap - EXIT
ok

echo "test-package: $deb: $passed passed, 0 failed"
