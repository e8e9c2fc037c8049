#!/usr/bin/env bash
# Installs the built binaries (nanonas, nanonas-coordinator, nanonas-worker, nanonas-eval) into
# PREFIX/bin, so that every README command works as written. Run after scripts/build.sh; uses
# sudo only when not root and PREFIX is not writable. Re-running costs nothing.
#   scripts/install.sh                    PREFIX = $NANONAS_PREFIX or /usr/local
#   scripts/install.sh --prefix DIR
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${NANONAS_BUILD_DIR:-build}
PREFIX=${NANONAS_PREFIX:-/usr/local}
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX=${2:-}; shift 2 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown flag '$1' (try --help)" >&2; exit 2 ;;
  esac
done
if [ ! -f "$BUILD_DIR/cmake_install.cmake" ]; then
  echo "install.sh: no build in $BUILD_DIR; run scripts/build.sh first" >&2
  exit 3
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  probe=$PREFIX
  while [ ! -d "$probe" ]; do probe=$(dirname "$probe"); done
  if [ ! -w "$probe" ] || { [ -d "$PREFIX/bin" ] && [ ! -w "$PREFIX/bin" ]; }; then SUDO="sudo"; fi
fi
$SUDO cmake --install "$BUILD_DIR" --prefix "$PREFIX" >/dev/null
case ":$PATH:" in
  *":$PREFIX/bin:"*) ;;
  *) echo "install.sh: $PREFIX/bin is not on your PATH; add it to run nanonas by name" ;;
esac
echo "install.sh: nanonas, nanonas-coordinator, nanonas-worker, nanonas-eval in $PREFIX/bin"
