#!/usr/bin/env bash
# The one test command: installs dependencies (Debian packages), builds, runs every test.
#   scripts/test.sh              all suites (unit + integration), via ctest
#   scripts/test.sh -R Search    only tests whose name matches (ctest -R)
# Also installs the binaries into /usr/local/bin (scripts/install.sh; SKIP_INSTALL=1 does not), so
# the README's commands work by name afterwards. Run as root or as a user with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
if [ "${SKIP_INSTALL:-0}" != 1 ]; then scripts/install.sh; fi
BUILD_DIR=${NANONAS_BUILD_DIR:-build}
jobs=$(nproc)
cd "$BUILD_DIR"
# A test that fails is run once more before the suite fails: the process-level integration tests
# wait on real processes with bounded timeouts, which a loaded 2-core machine can exceed once; a
# real failure fails twice (ctest prints both runs).
ctest --output-on-failure -j "$jobs" --repeat until-pass:2 "$@"
