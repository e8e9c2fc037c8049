#!/usr/bin/env bash
# End-to-end test of the Docker Compose deployment (issue: lab-server deployment).
#   compose_e2e.sh PATH_TO_NANONAS_CLI
# Builds the images, brings the stack up with 3 workers, submits a small real job from the host,
# kills one worker container mid-job (the job must still succeed), scales workers up during a job
# (the new worker must receive work), checks Prometheus's targets API shows the coordinator and
# every worker up, and that `down -v` leaves nothing behind.
# Exit 0: pass. Exit 77: Docker is not usable here (ctest reports the test as skipped, loudly).
set -euo pipefail
CLI=$(readlink -f "$1")
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
COMPOSE_FILE="$ROOT/deploy/docker-compose.yml"
PROJECT="nanonas-e2e-$$"
TAG="e2e"
WORK=$(mktemp -d /tmp/nanonas-e2e.XXXXXX)

if ! docker info >/dev/null 2>&1; then
  echo "SKIP: docker is not usable on this machine (docker info failed)"; exit 77
fi
# NANONAS_COMPOSE picks the Compose implementation (e.g. "docker compose" for v2, or a path);
# default: Debian's docker-compose 1.29 when installed, else the v2 plugin.
if [ -n "${NANONAS_COMPOSE:-}" ]; then read -ra DC <<< "$NANONAS_COMPOSE"
elif command -v docker-compose >/dev/null 2>&1; then DC=(docker-compose); else DC=(docker compose); fi
log() { echo "[e2e $(date +%T)] $*"; }
log "compose: $("${DC[@]}" version 2>/dev/null | head -n1)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export NANONAS_IMAGE_TAG=$TAG NANONAS_BIND=127.0.0.1
export NANONAS_GRPC_PORT=$(free_port) NANONAS_METRICS_PORT=$(free_port) NANONAS_PROMETHEUS_PORT=$(free_port)
export NANONAS_DATA_DIR="$WORK/data" NANONAS_WORKER_MEMORY=1g
mkdir -p "$NANONAS_DATA_DIR"
SERVER="127.0.0.1:$NANONAS_GRPC_PORT"
dc() { "${DC[@]}" -p "$PROJECT" -f "$COMPOSE_FILE" "$@"; }
fail() { echo "[e2e] FAIL: $*" >&2; dc logs --tail=80 >&2 || true; exit 1; }

cleanup() {
  dc down -v --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ "${NANONAS_E2E_IMAGE_TAG:-}" != "" ]; then
  export NANONAS_IMAGE_TAG=$NANONAS_E2E_IMAGE_TAG   # reuse images built before (development)
else
  log "building images"
  "$ROOT/deploy/build-images.sh" --tag "$TAG"
fi

log "up with 3 workers (grpc $SERVER, prometheus 127.0.0.1:$NANONAS_PROMETHEUS_PORT)"
dc up -d --scale worker=3

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "timed out after ${limit}s waiting for $what"
    sleep 2
  done
}
wait_for 120 "the coordinator to be healthy" "$CLI" --server "$SERVER" health

# job_field JOB_JSON_FILE EXPR: evaluates a Python expression over the parsed job (j).
job_py() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); $2" "$1"; }

python3 "$HERE/make_stripes.py" "$WORK/stripes" --per-class 80 --size 16
submit() {
  "$CLI" --server "$SERVER" submit "$WORK/stripes" --input 16x16x3 --ram 64KiB --flash 256KiB \
    --epochs 2 --skip-final --name "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])'
}

count_workers_up() {
  python3 -c '
import json, sys, urllib.request
url = "http://127.0.0.1:%s/api/v1/targets" % sys.argv[1]
t = json.load(urllib.request.urlopen(url, timeout=5))["data"]["activeTargets"]
up = [x for x in t if x["health"] == "up"]
print(sum(1 for x in up if x["labels"]["job"] == "nanonas-worker"),
      sum(1 for x in up if x["labels"]["job"] == "nanonas-coordinator"))' "$NANONAS_PROMETHEUS_PORT"
}

log "submitting job 1"
JOB=$(submit e2e-kill)
log "job $JOB: waiting for a running candidate"
victim=""
deadline=$((SECONDS + 180))
while [ -z "$victim" ]; do
  [ $SECONDS -lt $deadline ] || fail "no candidate started within 180s"
  "$CLI" --server "$SERVER" get "$JOB" --json > "$WORK/job.json"
  victim=$(job_py "$WORK/job.json" '
cs = j.get("candidates", [])
run = [c for c in cs if c.get("state") in ("CANDIDATE_STATE_RUNNING", "RUNNING")]
print(run[0].get("worker", "") if run else "")')
  [ -n "$victim" ] || sleep 1
done
# The worker id starts with the container's hostname (its short container id).
container=$(dc ps -q worker | while read -r id; do
  case "$victim" in "${id:0:12}"*) echo "$id";; esac; done | head -n1)
[ -n "$container" ] || fail "no worker container matches the running candidate's worker '$victim'"
log "killing worker container ${container:0:12} (running a candidate of $JOB)"
docker kill "$container" >/dev/null

log "scaling workers up to 4 while the job runs"
before=$(dc ps -a -q worker | sort)   # -a: the killed container counts as existing
dc up -d --no-recreate --scale worker=4
after=$(dc ps -a -q worker | sort)
newc=$(comm -13 <(echo "$before") <(echo "$after") | head -n1)
[ -n "$newc" ] || fail "scaling up created no new worker container"
log "new worker container ${newc:0:12}"

log "waiting for job 1 to end"
"$CLI" --server "$SERVER" watch "$JOB" > "$WORK/watch1.txt" 2>&1 || { cat "$WORK/watch1.txt"; fail "job $JOB did not succeed after a worker was killed"; }
"$CLI" --server "$SERVER" get "$JOB" --json > "$WORK/job.json"
job_py "$WORK/job.json" 'assert j["state"] in ("JOB_STATE_SUCCEEDED","SUCCEEDED"), j["state"]' || fail "job 1 not SUCCEEDED"

# The new worker must receive work: run jobs until a candidate lands on it (bounded).
got_work=""
for i in 1 2 3; do
  JOB2=$(submit "e2e-scale-$i")
  "$CLI" --server "$SERVER" watch "$JOB2" > "$WORK/watch2.txt" 2>&1 || fail "job $JOB2 failed"
  "$CLI" --server "$SERVER" get "$JOB2" --json > "$WORK/job2.json"
  if job_py "$WORK/job2.json" "
import sys
ws = {c.get('worker','') for c in j.get('candidates', [])}
sys.exit(0 if any(w.startswith('${newc:0:12}') for w in ws) else 1)"; then got_work=1; break; fi
done
[ -n "$got_work" ] || fail "the worker added by scaling up never received an evaluation"
log "the new worker received work"

log "checking Prometheus targets"
expected=$(dc ps -q worker | wc -l)
deadline=$((SECONDS + 90))
while :; do
  read -r wup cup < <(count_workers_up || echo "0 0")
  [ "$cup" = 1 ] && [ "$wup" = "$expected" ] && break
  [ $SECONDS -lt $deadline ] || fail "Prometheus shows $wup/$expected workers and $cup/1 coordinator up"
  sleep 3
done
log "Prometheus: coordinator and $wup workers up"

log "down -v"
dc down -v --remove-orphans
left=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT"; \
       docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT"; \
       docker network ls -q --filter "label=com.docker.compose.project=$PROJECT")
[ -z "$left" ] || fail "down -v left resources behind: $left"
trap 'rm -rf "$WORK"' EXIT
log "PASS"
