#!/usr/bin/env bash
# Builds nanonas-bench (Release) and runs the nanonas vs PyTorch benchmarks, printing the tables.
#   bench/run.sh [--quick] [--only throughput,accuracy,memory] [--reps N] [--seeds 1,2,3]
#                [--limit N] [--threads 2,1] [--json-out FILE] [--build-dir DIR] [--no-build]
#                [--nice N]
# --quick: 1 repetition, shorter timing windows, 1 accuracy seed, memory of (16,3) only (~5 min);
# the full run takes about 15 minutes on the 2-core development machine. See bench/README.md.
# --nice N runs the measurements at that priority (e.g. -10 as root on a machine busy with builds).
# Needs the benchmark extras: scripts/setup.sh --bench (python3-torch, python3-numpy).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${NANONAS_BENCH_BUILD_DIR:-build-bench}
build=1
nice_level=""
pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) BUILD_DIR=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --nice) nice_level=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) pass+=("$1"); shift ;;
  esac
done

PY=/usr/bin/python3  # Debian's interpreter: python3-torch is installed for it, not for pyenv's
if ! "$PY" -c 'import torch, numpy' 2>/dev/null; then
  echo "bench/run.sh: $PY cannot import torch and numpy; run scripts/setup.sh --bench" >&2
  exit 2
fi

if [ "$build" = 1 ]; then
  export CCACHE_DIR=${CCACHE_DIR:-$PWD/.ccache}
  # (Re)configure so that targets added since the last configure are picked up.
  mkdir -p "$BUILD_DIR"
  if ! cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
       -DNANONAS_BUILD_TESTS=OFF >"$BUILD_DIR/configure.log" 2>&1; then
    echo "bench/run.sh: configuring $BUILD_DIR failed (see $BUILD_DIR/configure.log)" >&2
  fi
  targets=$(ninja -C "$BUILD_DIR" -t targets all 2>/dev/null || true)
  if grep -q '^nanonas-bench:' <<<"$targets"; then
    ninja -C "$BUILD_DIR" -j2 nanonas-bench || \
      echo "bench/run.sh: building nanonas-bench failed: PyTorch figures only" >&2
  else
    echo "bench/run.sh: nanonas-bench is not defined (no training engine yet): PyTorch only" >&2
  fi
fi

launcher=()
if [ -n "$nice_level" ]; then launcher=(nice -n "$nice_level"); fi
exec "${launcher[@]}" "$PY" bench/run.py --bin "$BUILD_DIR/bench/nanonas-bench" \
  --json-out "$BUILD_DIR/bench-results.json" "${pass[@]}"
