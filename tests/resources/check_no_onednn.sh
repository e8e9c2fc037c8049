#!/bin/sh
# Fails when the binary $1 links oneDNN (a shared dependency) or the training engine (its symbols,
# linked statically): the coordinator's resource model must stay pure (common/resources).
set -u
bin="$1"
[ -x "$bin" ] || { echo "no binary at $bin"; exit 1; }
if ldd "$bin" | grep -i 'dnnl'; then
  echo "FAIL: $bin links oneDNN"
  exit 1
fi
if nm -C "$bin" | grep -E 'nanonas::engine::|dnnl_' | head -5 | grep .; then
  echo "FAIL: $bin contains training-engine or oneDNN symbols"
  exit 1
fi
echo "OK: $bin links neither oneDNN nor the training engine"
