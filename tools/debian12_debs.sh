#!/usr/bin/env bash
# Fetch packages of Debian 12 ("bookworm") and unpack them into a folder, on
# any Debian or Ubuntu system, installing nothing:
#
#   tools/debian12_debs.sh ROOT PACKAGE...
#
# apt downloads them with a temporary source list (bookworm, bookworm-updates,
# bookworm-security, main) signed by Debian's archive keyring, so the Release
# files are verified and each .deb is checked against them; the system's own
# sources, preferences and package database are neither used nor changed.
# Each .deb is unpacked into ROOT with dpkg-deb -x (no maintainer scripts run),
# and its file name is printed on stdout. Dependencies are not followed: the
# caller names every package it wants.
#
# Used by tools/setup.sh (a project-local Python 3.11 where the system has no
# Python 3.10/3.11) and tools/device_bundle.sh (the GPU machine's bundle).
# Needs apt-get, dpkg-deb and the keyring of the package debian-archive-keyring
# (DEBIAN12_KEYRING names another file).
# DEBIAN12_MIRROR / DEBIAN12_SECURITY_MIRROR replace http://deb.debian.org/debian
# and http://deb.debian.org/debian-security.
set -euo pipefail

say() { echo "debian12_debs: $*" >&2; }
die() { say "$*"; exit 1; }

[ $# -ge 2 ] || die "usage: tools/debian12_debs.sh ROOT PACKAGE..."
ROOT=$1; shift
KEYRING=${DEBIAN12_KEYRING:-/usr/share/keyrings/debian-archive-keyring.gpg}
MIRROR=${DEBIAN12_MIRROR:-http://deb.debian.org/debian}
SECURITY=${DEBIAN12_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

for tool in apt-get dpkg-deb; do
  command -v "$tool" >/dev/null ||
    die "needs $tool, which this system lacks: Debian 12's packages are fetched with apt (a Debian or Ubuntu system)"
done
[ -r "$KEYRING" ] ||
  die "needs Debian's archive keyring $KEYRING to verify Debian 12's packages: apt-get install debian-archive-keyring"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/debian12-debs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# apt fetches as its unprivileged user _apt when run as root: let it write here.
chmod 755 "$tmp"
mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/parts" "$tmp/debs"
: > "$tmp/status"
cat > "$tmp/sources.list" <<EOF
deb [signed-by=$KEYRING] $MIRROR bookworm main
deb [signed-by=$KEYRING] $MIRROR bookworm-updates main
deb [signed-by=$KEYRING] $SECURITY bookworm-security main
EOF
if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then
  chown _apt "$tmp/debs" "$tmp/lists/partial" "$tmp/cache/archives/partial"
fi
apt=(apt-get -q
     -o Dir::Etc::SourceList="$tmp/sources.list" -o Dir::Etc::SourceParts="$tmp/parts"
     -o Dir::Etc::Preferences="$tmp/parts/none" -o Dir::Etc::PreferencesParts="$tmp/parts"
     -o Dir::State::Lists="$tmp/lists" -o Dir::State::status="$tmp/status"
     -o Dir::Cache="$tmp/cache" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
     -o APT::Default-Release= -o Acquire::Languages=none)

# apt's first error, on one line
first_error() { grep -m1 '^\(E\|W\): ' "$1" | sed 's/^[EW]: //; s/[[:space:]]*$//' || true; }

say "reading Debian 12's package lists from $MIRROR and $SECURITY"
if ! "${apt[@]}" update > "$tmp/update.log" 2>&1 || grep -q '^\(E\|W\): ' "$tmp/update.log"; then
  if grep -q 'NO_PUBKEY\|not signed\|EXPKEYSIG\|BADSIG' "$tmp/update.log"; then
    die "Debian 12's package lists are not signed by a key in $KEYRING ($(first_error "$tmp/update.log")): update the keyring (apt-get install debian-archive-keyring) and run again"
  fi
  die "could not read Debian 12's package lists from $MIRROR ($(first_error "$tmp/update.log")): check the network, or set DEBIAN12_MIRROR to a reachable Debian mirror, and run again"
fi
say "downloading $*"
if ! (cd "$tmp/debs" && "${apt[@]}" download "$@") > "$tmp/download.log" 2>&1; then
  die "could not download Debian 12's packages ($(first_error "$tmp/download.log")): check the network and the package names, and run again"
fi
mkdir -p "$ROOT"
for deb in "$tmp"/debs/*.deb; do
  dpkg-deb -x "$deb" "$ROOT"
  echo "${deb##*/}"
done
