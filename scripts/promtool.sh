#!/usr/bin/env bash
# Makes sure Prometheus's promtool is available for the tests that lint the
# metrics and unit-test the alert rules (platformtest). Uses $PROMTOOL or one on
# the PATH if there is one; otherwise takes promtool out of Debian's
# `prometheus` package (without installing the package, so no Prometheus
# server is set up) into .cache/tools/promtool.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

dest=.cache/tools/promtool
if [ -n "${PROMTOOL:-}" ] && [ -x "$PROMTOOL" ]; then exit 0; fi
if command -v promtool >/dev/null 2>&1; then exit 0; fi
if [ -x "$dest" ]; then exit 0; fi

command -v apt-get >/dev/null 2>&1 || die "promtool is missing and this is not a Debian/Ubuntu machine: install Prometheus's promtool on the PATH (or set PROMTOOL)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
say "fetching promtool from Debian's prometheus package"
if ! (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1); then
  if [ "$(id -u)" -eq 0 ]; then apt-get update -qq; else sudo apt-get update -qq; fi
  (cd "$tmp" && apt-get download prometheus >/dev/null) || die "could not download Debian's prometheus package"
fi
dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
mkdir -p "$(dirname "$dest")"
cp "$tmp/x/usr/bin/promtool" "$dest"
"$dest" --version >/dev/null
say "promtool ready: $dest"
