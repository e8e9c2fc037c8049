#!/usr/bin/env bash
# The web view in a real browser (ctest web.browser): a coordinator with --http-listen and one
# worker on loopback, a tiny real job (stripes, 16x16 grayscale, 1 epoch per candidate, a 3-epoch
# final training), and Chromium's headless --dump-dom of the pages:
#   - the job's page, loaded before the worker starts, follows the job live: the number of
#     candidates it drew (data-drawn-history) grows within one page load, and it ends with the
#     final training's curve and the artifact links;
#   - the jobs page lists the job, its name (HTML markup) shown as text, never as markup;
#   - the workers and datasets pages list the worker and the dataset;
#   - an artifact fetched from its URL equals `nanonas get --out`'s copy.
# Fails loudly (exit 1) when chromium is missing: apt-get install chromium (scripts/setup.sh).
#   browser_test.sh COORDINATOR_BIN WORKER_BIN CLI_BIN
set -euo pipefail
COORDINATOR=$1 WORKER=$2 NANONAS=$3
fail() { echo "web.browser: FAIL: $*" >&2; exit 1; }
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || fail "chromium is not installed (apt-get install chromium; scripts/setup.sh)"
command -v curl >/dev/null || fail "curl is not installed"

WORK=$(mktemp -d -t nanonas-web.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "web.browser: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
logs() {
  echo "--- coordinator log"; tail -n 30 "$WORK/coordinator.log" || true
  echo "--- worker log"; tail -n 30 "$WORK/worker.log" 2>/dev/null || true
}
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Two classes of 16x16 grayscale stripes (pure Python PNGs).
python3 - "$WORK/stripes" <<'PY'
import os, random, struct, sys, zlib
root = sys.argv[1]
rng = random.Random(7)
def png(px, w, h):
    raw = b"".join(b"\x00" + bytes(px[y * w:(y + 1) * w]) for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
for cls in ("horizontal", "vertical"):
    os.makedirs(os.path.join(root, cls))
    for i in range(120):  # the final training calibrates on >= 150 training images
        phase = rng.randrange(4)
        px = [(200 if (((y if cls == "horizontal" else x) + phase) // 2) % 2 else 40)
              + rng.randrange(-30, 30) for y in range(16) for x in range(16)]
        with open(os.path.join(root, cls, f"{i:03d}.png"), "wb") as f:
            f.write(png(px, 16, 16))
PY

GRPC="127.0.0.1:$(free_port)"
HTTP_PORT=$(free_port)
WEB="http://127.0.0.1:$HTTP_PORT"
"$COORDINATOR" --listen "$GRPC" --metrics-listen "127.0.0.1:$(free_port)" \
  --http-listen "127.0.0.1:$HTTP_PORT" --state-dir "$WORK/state" >"$WORK/coordinator.log" 2>&1 &
PIDS+=($!)
export NANONAS_SERVER="$GRPC"
for i in $(seq 1 100); do
  if curl -fsS "$WEB/api/v1/jobs" >/dev/null 2>&1; then break; fi
  [ "$i" = 100 ] && { logs; fail "the web view did not come up on $WEB"; }
  sleep 0.2
done

# Submitted before any worker exists: the page sees the job before its first candidate ends.
NAME='<img src=x id=injected>&"stripes"'
JOB=$("$NANONAS" submit "$WORK/stripes" --input 16x16x1 --target NUCLEO-L010RB --epochs 1 \
  --final-epochs 3 --name "$NAME") || { logs; fail "submit failed"; }
echo "web.browser: job $JOB"

dump() {  # dump URL OUT BUDGET_MS
  timeout 150 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --no-first-run --user-data-dir="$WORK/chromium-profile-$RANDOM" \
    --virtual-time-budget="$3" --dump-dom "$1" >"$2" 2>"$2.stderr" ||
    { tail -n 20 "$2.stderr"; fail "chromium failed on $1"; }
}
# The job page follows the job with long polls; it stops polling when the job has ended, then
# the virtual time budget runs out and the DOM is dumped.
dump "$WEB/jobs/$JOB" "$WORK/job.html" 600000 &
BROWSER=$!
sleep 3
"$WORKER" --coordinator "$GRPC" --metrics-listen "127.0.0.1:$(free_port)" --listen 127.0.0.1:0 \
  --cache-dir "$WORK/cache" >"$WORK/worker.log" 2>&1 &
PIDS+=($!)
wait "$BROWSER" || { logs; fail "the job page did not load"; }

attr() {  # attr FILE NAME: the value of data-NAME on <main id="app">
  python3 - "$1" "$2" <<'PY'
import re, sys
html = open(sys.argv[1], encoding="utf-8").read()
m = re.search(r'<main[^>]*id="app"[^>]*>', html)
a = re.search(r'\sdata-%s="([^"]*)"' % re.escape(sys.argv[2]), m.group(0)) if m else None
print(a.group(1) if a else "")
PY
}
STATE=$(attr "$WORK/job.html" state)
HISTORY=$(attr "$WORK/job.html" drawn-history)
echo "web.browser: job page: state $STATE, candidates drawn over time: $HISTORY," \
  "renders $(attr "$WORK/job.html" renders), curve points $(attr "$WORK/job.html" curve-points)"
[ "$STATE" = JOB_STATE_SUCCEEDED ] || { logs; fail "the job page ended at state '$STATE'"; }
[ "$(attr "$WORK/job.html" ended)" = true ] || fail "the job page did not see the end"
python3 - "$HISTORY" <<'PY' || fail "the job page did not update live (drawn: $HISTORY)"
import sys
h = [int(x) for x in sys.argv[1].split(",") if x]
sys.exit(0 if len(h) >= 2 and h == sorted(h) and h[-1] > h[0] else 1)
PY
[ "$(attr "$WORK/job.html" curve-points)" = 3 ] || fail "no 3-epoch final training curve"
grep -q 'class="artifact"' "$WORK/job.html" || fail "no artifact links on the job page"
grep -q '<svg class="grid"' "$WORK/job.html" || fail "no search grid on the job page"
grep -q 'id="injected"' "$WORK/job.html" && fail "the job name was injected as markup"

dump "$WEB/" "$WORK/jobs.html" 3000
grep -q "$JOB" "$WORK/jobs.html" || fail "the jobs page does not list $JOB"
grep -q '&lt;img src=x id=injected&gt;&amp;"stripes"' "$WORK/jobs.html" ||
  fail "the jobs page does not show the job name as text"
grep -q 'id="injected"' "$WORK/jobs.html" && fail "the job name was injected as markup"

dump "$WEB/workers" "$WORK/workers.html" 3000
[ "$(attr "$WORK/workers.html" workers)" = 1 ] || fail "the workers page does not list the worker"
dump "$WEB/datasets" "$WORK/datasets.html" 3000
[ "$(attr "$WORK/datasets.html" datasets)" = 1 ] || fail "the datasets page does not list the dataset"
grep -q "$JOB" "$WORK/datasets.html" || fail "the datasets page does not name the job using it"

# A download from the page's link equals the CLI's copy.
"$NANONAS" get "$JOB" --out "$WORK/cli" >/dev/null || fail "nanonas get --out failed"
for name in model.tflite report.json; do
  curl -fsS -D "$WORK/$name.headers" -o "$WORK/web-$name" "$WEB/api/v1/jobs/$JOB/artifacts/$name" ||
    fail "download of $name failed"
  cmp "$WORK/web-$name" "$WORK/cli/$name" || fail "$name from the web differs from nanonas get's"
  grep -qi "^content-disposition: attachment; filename=\"$name\"" "$WORK/$name.headers" ||
    fail "$name: no attachment Content-Disposition"
done
STATUS=$(curl -s -o /dev/null -w '%{http_code}' "$WEB/api/v1/jobs/no-such-job")
[ "$STATUS" = 404 ] || fail "an unknown job answered $STATUS, not 404"
echo "web.browser: PASS"
