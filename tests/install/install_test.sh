#!/usr/bin/env bash
# ctest Install.FourBinariesRunFromATemporaryPrefix: install_test.sh BUILD_DIR CMAKE
# Installs the build into a temporary prefix, then runs each installed binary's --help with a PATH
# holding only that prefix's bin/ and the system folders, and starts the worker's evaluation child
# mode from there (no arguments: it must answer with its usage error, exit 2).
set -euo pipefail
build=$1
cmake=${2:-cmake}
prefix=$(mktemp -d -t nanonas-install-test.XXXXXX)
trap 'rm -rf "$prefix"' EXIT
"$cmake" --install "$build" --prefix "$prefix" >"$prefix.log" 2>&1 || {
  cat "$prefix.log"; rm -f "$prefix.log"; echo "FAIL: cmake --install failed"; exit 1; }
rm -f "$prefix.log"
export PATH="$prefix/bin:/usr/bin:/bin"
fail=0
for bin in nanonas nanonas-coordinator nanonas-worker nanonas-eval; do
  where=$(command -v "$bin" || true)
  if [ "$where" != "$prefix/bin/$bin" ]; then
    echo "FAIL: $bin is not installed in $prefix/bin (found '${where}')"; fail=1; continue
  fi
  # 0, or 1 for the coordinator's absl flags (their --help exits 1); 126/127 or a loader error
  # (a library missing outside the build tree) fails.
  rc=0
  out=$(cd / && "$bin" --help 2>&1) || rc=$?
  if [ "$rc" -gt 1 ]; then
    echo "FAIL: $bin --help exited $rc:"; echo "$out"; fail=1; continue
  fi
  case "$out" in
    *"$bin"*|*Usage*|*usage*) echo "ok: $bin --help" ;;
    *) echo "FAIL: $bin --help printed no usage:"; echo "$out"; fail=1 ;;
  esac
done
# The worker re-executes itself (/proc/self/exe) for each evaluation: its child mode must start
# from the installed copy too.
rc=0
child=$(cd / && nanonas-worker --evaluate-child </dev/null 2>&1) || rc=$?
if [ "$rc" != 2 ]; then
  echo "FAIL: installed nanonas-worker --evaluate-child exited $rc (2 expected):"; echo "$child"
  fail=1
else
  echo "ok: nanonas-worker --evaluate-child starts from $prefix/bin"
fi
exit "$fail"
