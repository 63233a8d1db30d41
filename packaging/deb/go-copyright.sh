#!/usr/bin/env bash
# Writes the package's copyright file (Debian's machine-readable format):
# packaging/deb/copyright for Ferry itself, plus a Files paragraph for Go's
# standard library and for each Go module the binary links statically, from
# the binary's build information (go version -m) and the license files in
# the module cache. Module paths are written as `go mod vendor` would place
# them. A license it does not recognise stops the build: name it here.
#
#   packaging/deb/go-copyright.sh BINARY > copyright
set -euo pipefail
bin=$1
go=${GO:-go}
modcache=$($go env GOMODCACHE)
goroot=$($go env GOROOT)
base=packaging/deb/copyright

# license_name FILE: the license's short name(s), as the format spells them.
license_name() {
	local text names=()
	text=$(tr -s ' \t\n' ' ' <"$1")
	if grep -q "Redistribution and use in source and binary forms" <<<"$text"; then
		if grep -Eq "Neither the name|names of (its|their) contributors may be used" <<<"$text"; then
			names+=(BSD-3-clause)
		else
			names+=(BSD-2-clause)
		fi
	fi
	grep -q "Permission is hereby granted, free of charge" <<<"$text" && names+=(Expat)
	grep -q "Apache License,\? Version 2.0" <<<"$text" && names+=(Apache-2.0)
	grep -q "Mozilla Public License Version 2.0" <<<"$text" && names+=(MPL-2.0)
	grep -q "Permission to use, copy, modify, and/or distribute this software" <<<"$text" && names+=(ISC)
	[ "${#names[@]}" -gt 0 ] || { echo "go-copyright: unrecognised license $1: add it to $0" >&2; return 1; }
	local IFS=' '
	sed 's/ / and /g' <<<"${names[*]}"
}

# quote FILE: FILE as the text of a field, the Apache License's terms left
# out (the standalone Apache-2.0 paragraph points to them; Debian's policy
# is not to repeat them).
quote() {
	sed -e '/^[[:space:]]*Apache License[[:space:]]*$/,/END OF TERMS AND CONDITIONS/c\
[The terms of the Apache License, Version 2.0: see License: Apache-2.0.]' "$1" |
		sed -e 's/[[:space:]]*$//' -e 's/^$/./' -e 's/^/ /'
}

# paragraph PATTERN NAME DIR [COMMENT]: a Files paragraph for the code in DIR.
paragraph() {
	local pattern=$1 name=$2 dir=$3 comment=${4:-} license copyright notice
	license=$(find "$dir" -maxdepth 1 -type f -iregex '.*/\(licen[cs]e\|copying\)\(\.txt\|\.md\)?' | sort | head -n1)
	[ -n "$license" ] || { echo "go-copyright: $name has no license file in $dir" >&2; return 1; }
	local short
	short=$(license_name "$license")
	copyright=$(grep -Eo '^[[:space:]]*Copyright (\([cC]\) )?[0-9].*' "$license" | sed 's/^[[:space:]]*Copyright[[:space:]]*//' | sort -u | sed '2,$s/^/ /' || true)
	printf 'Files: %s\nCopyright: %s\nLicense: %s\n' "$pattern" "${copyright:-the authors of $name}" "$short"
	# Apache-2.0 alone is the standalone paragraph at the end; any other
	# license is quoted whole, with its own copyright lines.
	[ "$short" = Apache-2.0 ] || quote "$license"
	notice=$(find "$dir" -maxdepth 1 -type f -iname 'notice*' | head -n1)
	if [ -n "$notice" ]; then
		printf 'Comment: its NOTICE file:\n'
		quote "$notice"
	elif [ -n "$comment" ]; then
		printf 'Comment: %s\n' "$comment"
	fi
	echo
}

# Ferry's own paragraphs, then the linked code, then the standalone licenses.
awk 'BEGIN { RS = ""; ORS = "\n\n" } !/^License:/' "$base"
paragraph "go/*" "Go" "$goroot" "Go's runtime and standard library ($($go env GOVERSION))"
$go version -m "$bin" | awk '$1 == "dep" { print $2, $3 } $1 == "=>" { print "replaced", $2, $3 }' |
	while read -r module version; do
		[ "$module" != replaced ] || { echo "go-copyright: replaced modules are not handled: $version" >&2; exit 1; }
		# The module cache escapes capitals as !lower.
		dir="$modcache/$(sed 's/[A-Z]/!\L&/g' <<<"$module")@$version"
		paragraph "vendor/$module/*" "$module" "$dir"
	done
awk 'BEGIN { RS = ""; ORS = "\n\n" } /^License:/' "$base" | sed '$d'
