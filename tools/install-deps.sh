#!/bin/sh
# Installs the Debian packages sluice needs. Idempotent and quiet when
# everything is present. Usage: tools/install-deps.sh [build|test|bench]
set -e
want_build="build-essential cmake pkg-config liburing-dev libnghttp2-dev libmsgpack-dev libhttp-parser-dev libssl-dev"
want_test="curl nghttp2-client nghttp2-server python3 python3-h2 python3-httpx python3-msgpack python3-pynvim nodejs npm iproute2 nftables procps clang libclang-rt-14-dev chromium openssl python3-jwt python3-cryptography"
want_bench="gnuplot-nox redis-server strace linux-perf h2o"

set -- "${1:-build}"
pkgs="$want_build"
case "$1" in
  build) ;;
  test) pkgs="$pkgs $want_test" ;;
  bench) pkgs="$pkgs $want_test $want_bench" ;;
  *) echo "usage: $0 [build|test|bench]" >&2; exit 2 ;;
esac

missing=""
for p in $pkgs; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
# nodejs/npm may come from outside Debian on some images; a working node is enough.
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  missing=$(echo "$missing" | tr ' ' '\n' | grep -vx -e nodejs -e npm | tr '\n' ' ')
fi
missing=$(echo $missing)

# The Node msgpack-RPC interop test's modules (tests/integration/node) and
# the browser tests' puppeteer-core (tests/integration/browser), as pinned
# by their lockfiles; each skipped when its node_modules is newer than its lock.
npm_modules() {
  [ "$1" = build ] && return 0
  command -v npm >/dev/null 2>&1 || return 0
  for sub in node browser; do
    dir="$(dirname "$0")/../tests/integration/$sub"
    [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ] && continue
    echo "install-deps: npm ci in tests/integration/$sub" >&2
    # The browser tests drive Debian's /usr/bin/chromium: no browser download.
    (cd "$dir" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  done
  # The Durable Streams conformance suite, client and reference server (tests/ds).
  dir="$(dirname "$0")/../tests/ds"
  if [ ! "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
    echo "install-deps: npm ci in tests/ds" >&2
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}
[ -z "$missing" ] && { npm_modules "$1"; exit 0; }

if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing packages: $missing (run as root, or install them)" >&2
  exit 1
fi
echo "install-deps: installing $missing" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
npm_modules "$1"
