#!/usr/bin/env bash
# Configures and builds nanonas into ./build (incremental; ccache when present).
#   scripts/build.sh [extra cmake -D flags]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${NANONAS_BUILD_DIR:-build}
export CCACHE_DIR=${CCACHE_DIR:-$PWD/.ccache}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja "$@"
elif [ $# -gt 0 ]; then
  cmake "$BUILD_DIR" "$@"
fi
ninja -C "$BUILD_DIR"
