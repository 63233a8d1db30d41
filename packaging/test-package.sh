#!/usr/bin/env bash
# Checks the .deb that `make package` built: lintian, metadata, file list,
# the binary (stripped PIE), and the installed package. `make test` runs it.
# There is no systemd on the build machines (PID 1 is not systemd), so the
# units are checked with `systemd-analyze verify` and `systemd-analyze
# security --offline`, not started by systemd. The package is first unpacked
# with `dpkg -x` into a throwaway root (dpkg --root would run postinst inside
# a root that has no shell or adduser), then installed for real with dpkg -i,
# upgraded in place, and purged.
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
# lintian: no error. Its warnings and infos are shown; docs/operations.md
# says why those that remain stay.
command -v lintian >/dev/null || fail "lintian is not installed (make deps installs it)"
lint=$(lintian --display-info --fail-on error "$deb" 2>&1) || fail "lintian reports errors: $lint"
grep -E '^[WI]: ' <<<"$lint" >&2 || true
ok
# Depends: every library the binary links, with the minimum version
# dpkg-shlibdeps found (a host without libvirt gets libvirt0, not a loader error).
depends=$(dpkg-deb -f "$deb" Depends)
for dep in libvirt0 librbd1 librados2 libc6; do
	grep -Eq "(^|, )$dep \(>= [0-9][^)]*\)" <<<"$depends" || fail "Depends ($depends) lacks $dep with a version"
	ok
done
grep -Eq "(^|, )adduser(,|$)" <<<"$depends" || fail "Depends ($depends) lacks adduser"
ok
for script in postinst prerm postrm; do
	grep -q "$script" <<<"$info" || fail "no $script in the control archive"
	ok
done
grep -qx "/etc/ferry/ferry.yaml" < <(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles) || fail "ferry.yaml is not a conffile"
ok

contents=$(dpkg-deb --contents "$deb")
units=(ferry-nats ferry-publisher ferry-consumer ferry-agent ferry-openstack-sync)
paths=(./usr/bin/ferry ./etc/ferry/ferry.yaml
	./usr/share/doc/ferry/copyright ./usr/share/doc/ferry/changelog.gz ./usr/share/doc/ferry/README.md
	./usr/share/bash-completion/completions/ferry ./usr/share/zsh/vendor-completions/_ferry
	./usr/share/fish/vendor_completions.d/ferry.fish ./usr/share/man/man1/ferry.1.gz
	./usr/share/doc/ferry/grafana-dashboard.json ./usr/share/ferry/prometheus/ferry-alerts.yml)
for doc in docs/*.md; do paths+=("./usr/share/doc/ferry/${doc#docs/}"); done
for unit in "${units[@]}"; do
	paths+=("./lib/systemd/system/$unit.service")
	# Each unit's Documentation= names the man page of its command.
	page=$(sed -n 's/^Documentation=man:\([^( ]*\)(1).*/\1/p' "packaging/systemd/$unit.service")
	[ -n "$page" ] || fail "$unit.service has no Documentation=man:...(1)"
	paths+=("./usr/share/man/man1/$page.1.gz")
done
for path in "${paths[@]}"; do
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
for script in postinst prerm postrm; do
	sh -n "$ctrl/$script" || fail "$script does not parse"
	ok
done

# The binary: a position-independent executable without symbols or debug
# information (readelf, as lintian's checks do).
bin="$root/usr/bin/ferry"
readelf -h "$bin" | grep -Eq 'Type: +DYN' || fail "/usr/bin/ferry is not PIE: $(readelf -h "$bin" | grep Type:)"
readelf -d "$bin" | grep -q 'FLAGS_1.*PIE' || fail "/usr/bin/ferry lacks the PIE flag"
ok
sections=$(readelf -S -W "$bin")
! grep -Eq ' \.(symtab|debug_[a-z]+|zdebug_[a-z]+) ' <<<"$sections" || fail "/usr/bin/ferry is not stripped: $(grep -Eo ' \.(symtab|z?debug_[a-z]+) ' <<<"$sections" | tr -d '\n')"
ok
# Man pages and completions are the commands' own: a page per command, and
# each shell's completion script names ferry.
for page in "$root"/usr/share/man/man1/*.1.gz; do
	zcat "$page" | grep -q '^\.SH NAME' || fail "$(basename "$page") has no NAME section"
done
[ "$(find "$root/usr/share/man/man1" -name 'ferry*.1.gz' | wc -l)" -ge 15 ] || fail "fewer man pages than commands"
ok
for f in bash-completion/completions/ferry zsh/vendor-completions/_ferry fish/vendor_completions.d/ferry.fish; do
	grep -q ferry "$root/usr/share/$f" || fail "$f does not complete ferry"
	ok
done
bash -n "$root/usr/share/bash-completion/completions/ferry" || fail "the bash completion does not parse"
grep -q '^Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' "$root/usr/share/doc/ferry/copyright" || fail "copyright is not machine-readable (DEP-5)"
grep -q '^License: Apache-2.0' "$root/usr/share/doc/ferry/copyright" || fail "copyright does not name Apache-2.0"
ok
# ...and covers the code linked into the binary: Go and every module.
for module in go $("${GO:-go}" version -m "$bin" | awk '$1 == "dep" { print "vendor/" $2 }'); do
	grep -qxF "Files: $module/*" "$root/usr/share/doc/ferry/copyright" || fail "copyright has no paragraph for $module"
done
ok
zcat "$root/usr/share/doc/ferry/changelog.gz" | head -n1 | grep -q "^ferry ($(dpkg-deb -f "$deb" Version))" || fail "changelog.gz does not start with this version"
ok

# The installed binary runs and knows its commands.
help=$("$root/usr/bin/ferry" --help)
for cmd in publisher consumer status config nats-server backup; do
	grep -qE "^  $cmd( |$)" <<<"$help" || fail "ferry --help does not list $cmd"
	ok
done
version=$("$root/usr/bin/ferry" --version) || fail "ferry --version failed"
[ "${version%%$'\n'*}" = "ferry $(dpkg-deb -f "$deb" Version)" ] || fail "ferry --version does not say the package's version: $version"
ok
# The installed example configuration is inert: it parses, and every key
# keeps its built-in default (all are commented out), so a command run right
# after dpkg -i does not use the example's Ceph id and keyrings.
check=$(env -u FERRY_CONFIG "$root/usr/bin/ferry" config check --config "$root/etc/ferry/ferry.yaml" 2>&1) || fail "config check of the installed example: $check"
set_keys=$(awk 'NR > 2 && $3 != "default"' <<<"$check")
[ -z "$set_keys" ] || fail "the installed ferry.yaml sets keys (they must be commented out): $set_keys"
ok
# ...and uncommenting it (the first '#' of each line below the header) gives
# a valid file: its only problems may be the Ceph files this machine lacks.
sed '1,/^$/!s/^#//' "$root/etc/ferry/ferry.yaml" >"$root/uncommented.yaml"
if ! check=$(env -u FERRY_CONFIG "$root/usr/bin/ferry" config check --config "$root/uncommented.yaml" 2>&1); then
	bad=$(grep -v -e "uncommented.yaml:[0-9]*: ceph\.[a-z]*\.[a-z]*: cannot read" -e "problem(s) in the configuration" <<<"$check" || true)
	[ -z "$bad" ] || fail "the example with its keys uncommented: $bad"
fi
grep -q "uncommented.yaml:[0-9]" <<<"$check" || fail "the uncommented example sets no key: $check"
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
# verify loads each unit from the unpacked root. Without systemd as PID 1 it
# also complains that sysinit.target is missing, so only the messages of a
# broken unit file fail the test (the broken unit proves they show). The man
# pages in Documentation= are checked after the install below.
command -v systemd-analyze >/dev/null || fail "systemd-analyze is not installed (make deps installs systemd)"
unit_errors="unknown (key|section)|missing '='|failed to parse|invalid|assignment outside|bad unit file setting|refusing"
printf '[Service]\nExecStrat=/usr/bin/ferry\n' >"$root/lib/systemd/system/ferry-broken.service"
out=$(systemd-analyze verify --man=no --root="$root" "$root/lib/systemd/system/ferry-broken.service" 2>&1 || true)
grep -Eiq "$unit_errors" <<<"$out" || fail "systemd-analyze verify does not flag a broken unit: $out"
rm "$root/lib/systemd/system/ferry-broken.service"
for unit in "$root"/lib/systemd/system/ferry-*.service; do
	out=$(systemd-analyze verify --man=no --root="$root" "$unit" 2>&1 || true)
	if grep -Ei "$unit_errors" <<<"$out"; then
		fail "systemd-analyze verify $(basename "$unit"): $out"
	fi
	ok
done

# A real install on this (throwaway CI) machine: dpkg runs the maintainer
# scripts, then the NATS unit's ExecStart runs as the unit's user the way
# systemd would start it (there is no systemd here; setpriv execs it in
# place, as systemd does), answers a client, and stops on SIGTERM; then the
# package is upgraded in place and purged.
[ "$(id -u)" -eq 0 ] || fail "installing the package needs root (run make test as root, as CI does)"
if dpkg-query -W -f='${Status}' ferry 2>/dev/null | grep -q "install ok installed"; then
	fail "a ferry package is already installed on this machine; remove it first (dpkg -P ferry)"
fi
DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" >/dev/null || fail "dpkg -i $deb failed"
trap 'dpkg -P ferry >/dev/null 2>&1 || true; rm -rf "$root"' EXIT
id ferry >/dev/null 2>&1 || fail "postinst did not create the user ferry"
[ -d /var/lib/ferry ] || fail "postinst did not create /var/lib/ferry"
[ "$(stat -c %U:%a /var/lib/ferry)" = ferry:755 ] || fail "/var/lib/ferry is $(stat -c %U:%a /var/lib/ferry), not ferry:755 (the agent must reach /var/lib/ferry/agent)"
ok

# The installed units: verify with the binary and man pages in place (any
# message about a ferry unit fails), and each unit's sandbox is at least as
# tight as the exposure bound docs/operations.md documents for it.
for unit in "${units[@]}"; do
	out=$(systemd-analyze verify "/lib/systemd/system/$unit.service" 2>&1 || true)
	if grep -Ei -e "^$unit\.service:" -e "$unit_errors" <<<"$out"; then
		fail "systemd-analyze verify $unit.service: $out"
	fi
	ok
done
exposure() {
	systemd-analyze security --offline=true "$1" 2>&1 |
		sed -n 's/^.*Overall exposure level for [^ ]*: \([0-9][0-9.]*\) .*$/\1/p'
}
printf '[Service]\nExecStart=/usr/bin/ferry status\n' >"$root/ferry-bare.service"
bare=$(exposure "$root/ferry-bare.service")
awk -v s="$bare" 'BEGIN { exit !(s > 9) }' || fail "systemd-analyze security rates an unsandboxed unit '$bare', not above 9"
ok
for unit in "${units[@]}"; do
	score=$(exposure "/lib/systemd/system/$unit.service")
	bound=$(awk -F'|' -v u="\`$unit.service\`" 'NF > 3 { gsub(/^ +| +$/, "", $2); gsub(/ /, "", $(NF-1)) } NF > 3 && $2 == u { print $(NF-1) }' /usr/share/doc/ferry/operations.md)
	[ -n "$score" ] || fail "systemd-analyze security --offline gave no score for $unit.service"
	[ -n "$bound" ] || fail "operations.md documents no exposure bound for $unit.service"
	awk -v s="$score" -v b="$bound" 'BEGIN { exit !(s <= b) }' || fail "$unit.service: exposure $score is worse than the documented $bound"
	echo "test-package: $unit.service: exposure $score (bound $bound)" >&2
	ok
done
man -w ferry-consumer-run >/dev/null 2>&1 || fail "man does not find ferry-consumer-run(1)"
ok

store=$(runuser -u ferry -- mktemp -d /var/lib/ferry/test-nats.XXXXXX)
port=$(( 20000 + RANDOM % 10000 ))
exec_start=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/ferry-nats.service)
exec_start=${exec_start//\$FERRY_NATS_SERVER_ARGS/}        # nothing in /etc/default here
# A store of the test's own, passed the way systemd passes StateDirectory=.
# shellcheck disable=SC2086
STATE_DIRECTORY=$store setpriv --reuid=ferry --regid=ferry --init-groups -- $exec_start --listen "127.0.0.1:$port" 2>"$store.log" &
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
rm -f "$store.log"

# An upgrade in place (the same version again: prerm upgrade, postinst
# configure OLD-VERSION) keeps the store; purge removes it, the units'
# recorded state and every file, and asks nothing (stdin is closed).
DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" >/dev/null </dev/null || fail "dpkg -i $deb over itself failed"
[ -d "$store" ] || fail "an upgrade removed $store"
ok
dpkg -P ferry >/dev/null </dev/null || fail "dpkg -P ferry failed"
[ ! -e /usr/bin/ferry ] && [ ! -e /etc/ferry/ferry.yaml ] || fail "dpkg -P left files behind"
[ ! -e /var/lib/ferry ] || fail "dpkg -P left /var/lib/ferry (the JetStream store) behind"
! ls /var/lib/systemd/deb-systemd-helper-enabled/ferry-* >/dev/null 2>&1 || fail "dpkg -P left the units' state in /var/lib/systemd/deb-systemd-helper-enabled"
trap 'rm -rf "$root"' EXIT
ok

echo "test-package: $deb: $passed passed, 0 failed"
