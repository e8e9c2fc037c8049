#!/usr/bin/env bash
# Installs every build and runtime dependency of nanonas from Debian bookworm packages.
# Idempotent and non-interactive: packages already present are left alone, so a second run
# costs one dpkg query. Run as root or as a user with sudo (used only when not root).
#
#   scripts/setup.sh                  build + test dependencies (the default profile, "all")
#   scripts/setup.sh --profile build  only what compiling the binaries needs (image builder)
#   scripts/setup.sh --bench          also the benchmark peer (python3-torch)
set -euo pipefail

profile=all
want_bench=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bench) want_bench=1; shift ;;
    --profile) profile=${2:-}; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown flag '$1' (try --help)" >&2; exit 2 ;;
  esac
done

# What building the binaries needs (also the builder stage of deploy/Dockerfile).
build_pkgs=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git
  # gRPC / protobuf / abseil
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc libabsl-dev
  # numerics and images (Debian's dnnl CMake config asks for the OpenCL headers)
  libdnnl-dev ocl-icd-opencl-dev libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  # metrics, state, model files, archives
  prometheus-cpp-dev libsqlite3-dev sqlite3 libflatbuffers-dev flatbuffers-compiler
  zlib1g-dev nlohmann-json3-dev libarchive-dev
  # command lines (CLI11, header-only), SHA-256 (OpenSSL's EVP)
  libcli11-dev libssl-dev
  # the coordinator's web view (HTTP server)
  libcpp-httplib-dev
)
# What the tests and the local demo need on top.
test_pkgs=(
  # GoogleTest, promtool, the Python example client, Fashion-MNIST for the local demo
  libgtest-dev libgmock-dev prometheus python3 python3-grpcio python3-protobuf
  clang-format  # scripts/check-format.sh (ctest format.clang_format)
  dataset-fashion-mnist
  python3-pyarmnn libarmnn-cpuref-backend22 python3-numpy  # export: Arm NN cross-check of .tflite files
  chromium curl  # tests/web/browser_test.sh: the web view's pages in headless Chromium
)
case "$profile" in
  build) pkgs=("${build_pkgs[@]}") ;;
  all) pkgs=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
  *) echo "setup.sh: unknown profile '$profile' (build or all)" >&2; exit 2 ;;
esac
if [ "$want_bench" = 1 ]; then
  pkgs+=(python3-torch python3-numpy)
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup.sh: all ${#pkgs[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
echo "setup.sh: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
