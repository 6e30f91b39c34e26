#!/usr/bin/env bash
# Install the Debian packages Kelvin needs: ngspice, its shared library and headers.
#
# Kelvin wants ngspice >= 41, which has the KLU sparse solver (`.options klu`): whole-network
# decks of 10^4-10^5 transistors factor some 30x faster than with Sparse 1.3, and a 256x256
# crossbar mesh becomes practical. Debian 12 (bookworm) ships ngspice 39, bookworm-backports
# ships 46: on bookworm this script adds the backports suite and installs from it. Elsewhere
# the distribution's packages are used (ngspice 39 still works: it ignores `.options klu`).
set -euo pipefail
PKGS=(ngspice libngspice0 libngspice0-dev)
WANT_MAJOR=41
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

installed_major() {  # major version of the installed ngspice package, 0 if absent
  local v
  v=$(dpkg-query -W -f='${Status} ${Version}' ngspice 2>/dev/null | sed -n 's/^install ok installed \([0-9]*\).*/\1/p')
  echo "${v:-0}"
}

missing=()
for pkg in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
if [ "$codename" = "bookworm" ] && [ "$(installed_major)" -lt "$WANT_MAJOR" -o ${#missing[@]} -gt 0 ]; then
  list=/etc/apt/sources.list.d/kelvin-bookworm-backports.list
  added=""
  if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "adding bookworm-backports (ngspice >= $WANT_MAJOR, with KLU)" >&2
    echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee "$list" >/dev/null
    added=1
  fi
  echo "installing ${PKGS[*]} from bookworm-backports" >&2
  if $SUDO apt-get update -qq &&
     DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -t bookworm-backports "${PKGS[@]}" >/dev/null; then
    exit 0
  fi
  echo "bookworm-backports unavailable; falling back to Debian's ngspice" >&2
  if [ -n "$added" ]; then $SUDO rm -f "$list"; fi
fi
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
