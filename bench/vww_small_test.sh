#!/usr/bin/env bash
# ctest bench.vww_small: bench/vww.sh with 2,000 images, 2 slots and a 5-epoch final training, then
# bench/vww_report.py check on its summary (every phase, a result (k, c), a model file whose size
# equals the reported Flash). No timing is asserted.
#   vww_small_test.sh COORDINATOR WORKER NANONAS MAKE_STANDIN
set -euo pipefail
if [ $# -ne 4 ]; then echo "usage: $0 COORDINATOR WORKER NANONAS MAKE_STANDIN" >&2; exit 2; fi
export NANONAS_COORDINATOR=$1 NANONAS_WORKER=$2 NANONAS_CLI=$3 NANONAS_MAKE_STANDIN=$4
OUT=$(mktemp -d -t nanonas-vww-small.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
cd "$(dirname "$0")"
./vww.sh 2000 "$OUT" 2 --final-epochs 5
python3 vww_report.py check "$OUT/summary.json"
