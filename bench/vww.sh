#!/usr/bin/env bash
# The VWW-sized benchmark (issue 15): NanoNAS's headline run (Visual Wake Words, ~115,000 50x50x3
# images, NUCLEO-L412KB: 40 KiB RAM, 128 KiB Flash, 2.73M MACC) end to end as a user runs it, on
# a Fashion-MNIST stand-in of the same size (bench/make_standin.cc), with the binaries of build/.
#
#   bench/vww.sh [COUNT (115000)] [OUT (${TMPDIR:-/tmp}/nanonas-vww)] [SLOTS (cores)] [SUBMIT FLAGS...]
#   bench/vww.sh 2000 /tmp/vww-small 2 --final-epochs 5      the small version (the ctest's)
#
# It starts a coordinator (state in a temporary folder) and one worker with SLOTS evaluation slots
# on loopback, writes the dataset to OUT/dataset (kept and reused while its OUT/dataset/standin.json
# says COUNT), runs `nanonas submit OUT/dataset/train --input 50x50x3 --target NUCLEO-L412KB
# --test-dir OUT/dataset/test --watch [SUBMIT FLAGS]`, then `nanonas get JOB --json` (OUT/job.json)
# and `nanonas get JOB --out OUT/artifacts`, and prints the breakdown (bench/vww_report.py), also
# written to OUT/summary.json. Logs: OUT/coordinator.log, OUT/worker.log, OUT/watch.log (stamped).
# Ctrl-C stops everything cleanly. Exit status: the submit's (0: the job SUCCEEDED).
#   NANONAS_BUILD_DIR=DIR   where the binaries are (default build); or name each one with
#   NANONAS_COORDINATOR, NANONAS_WORKER, NANONAS_CLI, NANONAS_MAKE_STANDIN
#   VWW_TIMEOUT=SECONDS     pass --timeout to the CLI (default: none, the CLI's own defaults)
#   KEEP=1                  keep the coordinator's temporary state folder
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
COUNT=${1:-115000}
OUT=${2:-${TMPDIR:-/tmp}/nanonas-vww}
SLOTS=${3:-$(nproc)}
shift $(( $# < 3 ? $# : 3 ))
case "$COUNT" in ''|*[!0-9]*) echo "vww: COUNT '$COUNT' is not a number" >&2; exit 2 ;; esac
case "$SLOTS" in ''|*[!0-9]*) echo "vww: SLOTS '$SLOTS' is not a number" >&2; exit 2 ;; esac
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

BUILD_DIR=${NANONAS_BUILD_DIR:-build}
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$ROOT/$BUILD_DIR" ;; esac
find_bin() {
  local f
  f=$(find "$BUILD_DIR" -type f -name "$1" -perm -u+x 2>/dev/null | head -n 1)
  if [ -z "$f" ]; then echo "vww: $1 not found under $BUILD_DIR; build first (scripts/build.sh)" >&2; exit 3; fi
  echo "$f"
}
COORDINATOR=${NANONAS_COORDINATOR:-$(find_bin nanonas-coordinator)}
WORKER=${NANONAS_WORKER:-$(find_bin nanonas-worker)}
NANONAS=${NANONAS_CLI:-$(find_bin nanonas)}
MAKE_STANDIN=${NANONAS_MAKE_STANDIN:-$(find_bin nanonas-make-standin)}
REPORT="$ROOT/bench/vww_report.py"

STATE=$(mktemp -d -t nanonas-vww.XXXXXX)
PIDS=()
SAMPLER=
stop_services() {
  # The worker first (it leaves the coordinator), then the coordinator; the sampler ends with them.
  for p in "${PIDS[@]}"; do
    kill -TERM "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  PIDS=()
  if [ -n "$SAMPLER" ]; then wait "$SAMPLER" 2>/dev/null || true; fi
  SAMPLER=
}
cleanup() {
  trap - EXIT INT TERM
  stop_services
  if [ "${KEEP:-0}" = 1 ]; then echo "vww: coordinator state kept in $STATE"; else rm -rf "$STATE"; fi
}
trap cleanup EXIT
trap 'echo; echo "vww: interrupted, stopping the coordinator and the worker"; exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
now() { echo "$EPOCHREALTIME"; }
elapsed() { python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 3))" "$1" "$2"; }

# 1. The dataset (reused when OUT/dataset/standin.json says the same count).
DATA="$OUT/dataset"
GEN_SECONDS=null
if python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["count"] == int(sys.argv[2]) else 1)' \
    "$DATA/standin.json" "$COUNT" 2>/dev/null; then
  GEN_SECONDS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds"])' "$DATA/standin.json")
  echo "vww: reusing the dataset in $DATA (generated in $GEN_SECONDS s)"
else
  echo "vww: generating $COUNT images into $DATA"
  t=$(now)
  "$MAKE_STANDIN" --out "$DATA" --count "$COUNT"
  GEN_SECONDS=$(elapsed "$t" "$(now)")
fi

# 2. A coordinator and one worker on loopback (own sessions: a Ctrl-C reaches this script only).
PORT=$(free_port)
SERVER="127.0.0.1:$PORT"
setsid "$WORKER" --coordinator "$SERVER" --metrics-listen "127.0.0.1:$(free_port)" \
  --listen 127.0.0.1:0 --slots "$SLOTS" --cache-dir "$STATE/cache" >"$OUT/worker.log" 2>&1 &
WORKER_PID=$!
PIDS+=("$WORKER_PID")
setsid "$COORDINATOR" --listen "$SERVER" --metrics-listen "127.0.0.1:$(free_port)" \
  --state-dir "$STATE/state" >"$OUT/coordinator.log" 2>&1 &
COORDINATOR_PID=$!
PIDS+=("$COORDINATOR_PID")
python3 "$REPORT" sample "$OUT/memory.json" "$COORDINATOR_PID" coordinator "$WORKER_PID" worker &
SAMPLER=$!
export NANONAS_SERVER="$SERVER"
for i in $(seq 1 100); do
  if "$NANONAS" list >/dev/null 2>&1; then break; fi
  if [ "$i" = 100 ]; then echo "vww: the coordinator did not come up:"; cat "$OUT/coordinator.log"; exit 3; fi
  sleep 0.2
done
echo "vww: coordinator on $SERVER, one worker with $SLOTS slots (logs in $OUT)"

# 3. The run, as a user types it; stdout (the job id, then the search path) stamped into watch.log.
TIMEOUT_FLAGS=()
if [ -n "${VWW_TIMEOUT:-}" ]; then TIMEOUT_FLAGS=(--timeout "$VWW_TIMEOUT"); fi
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
rm -f "$OUT/watch.log" "$OUT/job.json" "$OUT/summary.json"
rm -rf "$OUT/artifacts"
SUBMIT_START=$(now)
set +e
"$NANONAS" "${TIMEOUT_FLAGS[@]}" submit "$DATA/train" --input 50x50x3 --target NUCLEO-L412KB \
  --test-dir "$DATA/test" --name "vww-standin-$COUNT" --watch "$@" \
  | python3 -u "$REPORT" stamp "$OUT/watch.log"
STATUS=${PIPESTATUS[0]}
set -e
WATCH_END=$(now)
JOB=$(head -n 1 "$OUT/watch.log" 2>/dev/null | cut -d' ' -f2)
if [ -z "$JOB" ]; then echo "vww: the submit failed (status $STATUS)"; exit "$STATUS"; fi
"$NANONAS" --json get "$JOB" >"$OUT/job.json"
DOWNLOAD_START=$(now)
if [ "$STATUS" = 0 ]; then "$NANONAS" get "$JOB" --out "$OUT/artifacts"; fi
DOWNLOAD_END=$(now)

cat >"$OUT/times.json" <<EOF
{"generation_seconds": $GEN_SECONDS, "submit_start": $SUBMIT_START, "watch_end": $WATCH_END,
 "download_seconds": $(elapsed "$DOWNLOAD_START" "$DOWNLOAD_END"), "download_end": $DOWNLOAD_END,
 "slots": $SLOTS, "date_utc": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "commit": "$COMMIT"}
EOF
# The processes' peaks: stop them (the sampler writes its last sample as they go), then report;
# the EXIT trap then removes the state folder (a minute for 115,000 images).
stop_services
python3 "$REPORT" summarize "$OUT"
exit "$STATUS"
