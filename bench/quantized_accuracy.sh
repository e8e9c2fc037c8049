#!/usr/bin/env bash
# Issue 4's accuracy benchmark: a (4,2) model trained on Fashion-MNIST (28x28x1, the Debian
# package), float test accuracy against nanonas's uint8 integer inference of the exported model.
# Target: the quantized model within 2 points of the float one. Prints figures; never fails a build.
#
#   bench/quantized_accuracy.sh [--epochs N (20)] [--final] [--seed S] [--build-dir DIR]
#     --final   the full NanoNAS final training (100 epochs, Adam 0.01, batch 128)
set -euo pipefail
cd "$(dirname "$0")/.."
EPOCHS=20
FINAL_ONLY=0
SEED=1
BUILD_DIR=${NANONAS_BUILD_DIR:-build}
while [ $# -gt 0 ]; do
  case "$1" in
    --epochs) EPOCHS=$2; shift 2 ;;
    --final) FINAL_ONLY=1; shift ;;
    --seed) SEED=$2; shift 2 ;;
    --build-dir) BUILD_DIR=$2; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "quantized_accuracy.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
NANONAS_BUILD_DIR=$BUILD_DIR scripts/build.sh >/dev/null
OUT=$(mktemp -d /tmp/nanonas-qbench.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
args=(--data fashion-mnist --input 28x28x1 --k 4 --c 2 --final --seed "$SEED"
      --test-data fashion-mnist-test --export "$OUT/export" --json)
[ "$FINAL_ONLY" = 1 ] || args+=(--epochs "$EPOCHS")
echo "nanonas-eval ${args[*]}" >&2
"$BUILD_DIR/worker/nanonas-eval" "${args[@]}" > "$OUT/result.json"
python3 - "$OUT/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
f, q = r["float_test_accuracy"], r["quantized_test_accuracy"]
d = 100 * (q - f)
print(f"(4,2) Fashion-MNIST 28x28x1, {r['settings']['epochs']} epochs: "
      f"float test {100*f:.2f}%, uint8 test {100*q:.2f}%, difference {d:+.2f} points "
      f"({'within' if d >= -2 else 'NOT within'} the 2-point target); "
      f"model {r['tflite_bytes']} B = predicted Flash {r['predicted_flash_bytes']} B")
PY
