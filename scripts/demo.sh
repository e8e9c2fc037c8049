#!/usr/bin/env bash
# The first command of the README: installs and builds nanonas, starts a coordinator and one worker
# on loopback (state in a temporary folder), and runs a real NanoNAS search on a small Fashion-MNIST
# subset (Debian package dataset-fashion-mnist), showing the search path live and the result; then
# the winner's short final training (20 epochs), its uint8 quantization and export, scored on a
# held-out test set (Fashion-MNIST's test images), and downloads the artifacts (model.tflite,
# model.h, report.json, search-path.svg) with `nanonas get JOB --out DIR`.
# Ctrl-C stops everything cleanly.
#
#   scripts/demo.sh                 defaults: 4 classes x 1000 images, 28x28x1, 3 epochs/candidate
#   DEMO_PER_CLASS=300 scripts/demo.sh      smaller/faster
#   KEEP=1 scripts/demo.sh          keep the temporary folder (logs, state, dataset) afterwards
#   DEMO_OUT=DIR scripts/demo.sh    where the artifacts go (default ${TMPDIR:-/tmp}/nanonas-demo-output)
#   SKIP_SETUP=1 scripts/demo.sh    do not run scripts/setup.sh (dependencies already installed)
#   SKIP_BUILD=1 scripts/demo.sh    use the binaries already built under $NANONAS_BUILD_DIR (build)
#   DEMO_WEB_PORT=N scripts/demo.sh the web view's port (default 8080, a free one if it is taken);
#                                   on a terminal the demo keeps serving it until Enter
#   SKIP_INSTALL=1 scripts/demo.sh  do not install the binaries into /usr/local/bin (scripts/install.sh)
# Run as root or as a user with sudo (apt-get and the install into /usr/local use it when not root).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ "${SKIP_SETUP:-0}" != 1 ]; then scripts/setup.sh; fi
if [ "${SKIP_BUILD:-0}" != 1 ]; then scripts/build.sh; fi
# The README's later commands (nanonas ..., nanonas-coordinator ..., nanonas-worker ...) by name.
if [ "${SKIP_INSTALL:-0}" != 1 ]; then scripts/install.sh; fi
BUILD_DIR=${NANONAS_BUILD_DIR:-build}
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$ROOT/$BUILD_DIR" ;; esac

find_bin() {
  local f
  f=$(find "$BUILD_DIR" -type f -name "$1" -perm -u+x 2>/dev/null | head -n 1)
  if [ -z "$f" ]; then echo "demo: $1 not found under $BUILD_DIR; did the build succeed?" >&2; exit 3; fi
  echo "$f"
}
COORDINATOR=$(find_bin nanonas-coordinator)
WORKER=$(find_bin nanonas-worker)
NANONAS=$(find_bin nanonas)

WORK=$(mktemp -d -t nanonas-demo.XXXXXX)
PIDS=()
cleanup() {
  trap - EXIT INT TERM
  # In order: the worker first (it leaves the coordinator), then the coordinator.
  for p in "${PIDS[@]}"; do
    kill -TERM "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  if [ "${KEEP:-0}" = 1 ]; then
    echo "demo: logs and state kept in $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted, stopping the coordinator and the worker"; exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A class-folder dataset of PNGs from Fashion-MNIST (pure Python: gzip IDX in, PNG out).
PER_CLASS=${DEMO_PER_CLASS:-1000}
TEST_PER_CLASS=$(( PER_CLASS / 4 > 50 ? PER_CLASS / 4 : 50 ))
echo "demo: writing a Fashion-MNIST subset ($PER_CLASS training and $TEST_PER_CLASS test images of" \
  "4 classes) to $WORK/fashion and $WORK/fashion-test"
write_subset() {
python3 - "$1" "$2" "$3" <<'PY'
import gzip, os, struct, sys, zlib
out, per_class, stem = sys.argv[1], int(sys.argv[2]), sys.argv[3]
src = "/usr/share/datasets/fashion-mnist"
def find(stem):
    for name in (stem, stem + ".gz"):
        if os.path.exists(os.path.join(src, name)):
            return os.path.join(src, name)
    sys.exit(f"demo: {stem} not found in {src} (apt-get install dataset-fashion-mnist)")
def read(path):
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        return f.read()
images = read(find(f"{stem}-images-idx3-ubyte"))
labels = read(find(f"{stem}-labels-idx1-ubyte"))
n, rows, cols = struct.unpack(">III", images[4:16])
assert struct.unpack(">I", images[:4])[0] == 2051 and struct.unpack(">I", labels[:4])[0] == 2049
classes = {0: "tshirt_top", 1: "trouser", 7: "sneaker", 8: "bag"}
def png(pixels, w, h):
    raw = b"".join(b"\x00" + pixels[y * w:(y + 1) * w] for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
count = {c: 0 for c in classes}
for i in range(n):
    label = labels[8 + i]
    if label not in classes or count[label] >= per_class:
        continue
    d = os.path.join(out, classes[label])
    os.makedirs(d, exist_ok=True)
    px = images[16 + i * rows * cols:16 + (i + 1) * rows * cols]
    with open(os.path.join(d, f"{i:05d}.png"), "wb") as f:
        f.write(png(px, cols, rows))
    count[label] += 1
    if all(v >= per_class for v in count.values()):
        break
PY
}
write_subset "$WORK/fashion" "$PER_CLASS" train
write_subset "$WORK/fashion-test" "$TEST_PER_CLASS" t10k

PORT=$(free_port)
SERVER="127.0.0.1:$PORT"
# Own sessions (setsid): a Ctrl-C in the terminal reaches this script and the CLI only; the trap
# then stops the worker (it leaves the coordinator) and the coordinator with SIGTERM, in order.
setsid "$WORKER" --coordinator "$SERVER" --metrics-listen "127.0.0.1:$(free_port)" --listen 127.0.0.1:0 \
  --cache-dir "$WORK/cache" >"$WORK/worker.log" 2>&1 &
PIDS+=($!)
# The web view on 8080 when it is free (DEMO_WEB_PORT picks another), else on a free port.
WEB_PORT=${DEMO_WEB_PORT:-8080}
if ! python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' \
    "$WEB_PORT" 2>/dev/null; then
  WEB_PORT=$(free_port)
fi
WEB="http://127.0.0.1:$WEB_PORT"
setsid "$COORDINATOR" --listen "$SERVER" --metrics-listen "127.0.0.1:$(free_port)" \
  --http-listen "127.0.0.1:$WEB_PORT" --state-dir "$WORK/state" >"$WORK/coordinator.log" 2>&1 &
PIDS+=($!)
export NANONAS_SERVER="$SERVER"
echo "demo: coordinator on $SERVER (log $WORK/coordinator.log), one worker (log $WORK/worker.log)"
echo "demo: web view on $WEB"
for i in $(seq 1 100); do
  if "$NANONAS" list >/dev/null 2>&1; then break; fi
  if [ "$i" = 100 ]; then echo "demo: the coordinator did not come up:"; cat "$WORK/coordinator.log"; exit 3; fi
  sleep 0.2
done

# The limits of a NUCLEO-L010RB (20 KiB RAM, 128 KiB Flash, 750 k MACC): about a minute on 2 cores
# for the search (measured here: 40-53 s wall for the 47 candidates, 1000 images per class; result
# k=9 c=4), then the 20-epoch final training, quantization and export (measured here: 85 s for the
# whole demo; final validation 0.9825, test accuracy 0.992 float and 0.992 uint8, 36.3 KiB .tflite).
JOB=$("$NANONAS" submit "$WORK/fashion" --input 28x28x1 --target NUCLEO-L010RB \
  --epochs 3 --final-epochs 20 --test-dir "$WORK/fashion-test" --name demo-fashion-mnist)
echo "demo: job $JOB submitted; watching here and on $WEB/jobs/$JOB (Ctrl-C stops the demo)"
status=0
"$NANONAS" watch "$JOB" || status=$?
echo
if [ "$status" = 0 ]; then
  OUT=${DEMO_OUT:-${TMPDIR:-/tmp}/nanonas-demo-output}
  echo "demo: job succeeded (nanonas get $JOB --json prints every figure); its artifacts:"
  "$NANONAS" get "$JOB" --out "$OUT" || status=$?
else
  echo "demo: the job ended with exit status $status"
fi
if [ -t 0 ]; then
  # Keep the services up so the job's page (and its download links) can still be visited.
  read -r -p "demo: the web view stays on $WEB/jobs/$JOB; press Enter to stop everything " _ || true
fi
exit "$status"
