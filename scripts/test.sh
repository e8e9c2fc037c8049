#!/usr/bin/env bash
# The one test command: installs dependencies (Debian packages), builds, runs every test.
#   scripts/test.sh              all suites (unit + integration), via ctest
#   scripts/test.sh -R Search    only tests whose name matches (ctest -R)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
BUILD_DIR=${NANONAS_BUILD_DIR:-build}
jobs=$(nproc)
cd "$BUILD_DIR"
ctest --output-on-failure -j "$jobs" "$@"
