#!/usr/bin/env bash
# Builds the nanonas images: nanonas/coordinator, nanonas/worker, nanonas/prometheus (tag $TAG).
#
#   deploy/build-images.sh [--tag TAG] [--base IMAGE]
#
# --base-only   stop after making/finding the base image.
# --base IMAGE  a Debian bookworm image to build on (default: debian:bookworm when it can be
#               found locally or pulled; otherwise a local one is made with debootstrap from the
#               host's own Debian mirror and imported as nanonas/debian-base:bookworm).
# Environment: NANONAS_IMAGE_TAG (same as --tag, default dev).
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${NANONAS_IMAGE_TAG:-dev}
BASE=""
BASE_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) TAG=$2; shift 2 ;;
    --base) BASE=$2; shift 2 ;;
    --base-only) BASE_ONLY=1; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "build-images.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done

log() { echo "[build-images] $*" >&2; }

# The first Debian mirror URI the host's apt uses (deb822 .sources or one-line .list).
host_mirror() {
  local uri
  uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1 || true)
  if [ -z "$uri" ]; then
    uri=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}' | grep -v security | head -n1 || true)
  fi
  echo "$uri"
}

make_local_base() {
  local image=nanonas/debian-base:bookworm
  if docker image inspect "$image" >/dev/null 2>&1; then echo "$image"; return; fi
  command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || {
    log "installing debootstrap"; apt-get install -y -q debootstrap >&2; }
  local mirror; mirror=$(host_mirror)
  [ -n "$mirror" ] || { log "no Debian mirror found in /etc/apt; pass --base IMAGE"; exit 1; }
  local root; root=$(mktemp -d /tmp/nanonas-rootfs.XXXXXX)
  log "debootstrap bookworm (minbase) from the host's mirror into $root"
  if ! /usr/sbin/debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1; then
    tail -n 30 "$root.log" >&2; log "debootstrap failed (log: $root.log)"; exit 1
  fi
  rm -f "$root.log"
  # Same apt sources as the host (updates and security included).
  if ls /etc/apt/sources.list.d/*.sources >/dev/null 2>&1; then
    rm -f "$root/etc/apt/sources.list"
    for f in /etc/apt/sources.list.d/*.sources; do
      grep -q 'debian' "$f" && cp "$f" "$root/etc/apt/sources.list.d/"
    done
  fi
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import - "$image" >/dev/null
  rm -rf "$root"
  log "imported $image"
  echo "$image"
}

if [ -z "$BASE" ]; then
  if docker image inspect debian:bookworm >/dev/null 2>&1 || timeout 60 docker pull -q debian:bookworm >/dev/null 2>&1; then
    BASE=debian:bookworm
  else
    BASE=$(make_local_base)
  fi
fi
log "base image: $BASE"
[ "$BASE_ONLY" = 0 ] || exit 0

for target in coordinator worker prometheus; do
  log "building nanonas/$target:$TAG"
  logfile=$(mktemp /tmp/nanonas-build-$target.XXXXXX.log)
  dockerfile=deploy/Dockerfile
  [ "$target" != prometheus ] || dockerfile=deploy/prometheus/Dockerfile
  if ! docker build -f "$dockerfile" --build-arg BASE_IMAGE="$BASE" $([ "$target" = prometheus ] || echo --target "$target") \
      -t "nanonas/$target:$TAG" . >"$logfile" 2>&1; then
    tail -n 40 "$logfile" >&2
    log "building $target failed (full log: $logfile)"
    exit 1
  fi
  rm -f "$logfile"
done
log "done: nanonas/{coordinator,worker,prometheus}:$TAG"
