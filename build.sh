#!/usr/bin/env bash
# build.sh — the two things you do with spiral on a fresh Debian 12 machine:
#
#   ./build.sh quickstart   install what is missing, build, run the quickstart
#                           experiment, write its report, print where both are
#   ./build.sh test         install what is missing, build, run the whole suite
#
# Other verbs: deps (install only), build, asan (build + test under
# AddressSanitizer/UBSan in build-asan/), bench (build Release + run spiral-bench),
# fuzz [SECONDS] (libFuzzer on the snapshot decoder with clang, default 60 s).
# Run as root or with sudo available.  Only Debian packages are installed.
set -euo pipefail
cd "$(dirname "$0")"

PKGS=(build-essential cmake pkg-config git libevent-dev libmsgpack-dev libhdf5-dev
      libcmocka-dev libyaml-dev hdf5-tools python3 python3-h5py python3-numpy
      python3-pandas python3-xarray python3-h5netcdf python3-matplotlib python3-venv
      python3-pytest)
JOBS=$(nproc 2>/dev/null || echo 2)

deps() {
    local missing=()
    for p in "${PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "build.sh: installing ${missing[*]}" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
}

build() {   # build DIR [cmake args...]
    local dir=$1; shift
    cmake -S . -B "$dir" "$@" >/dev/null
    cmake --build "$dir" -j "$JOBS"
}

case "${1:-}" in
deps) deps ;;
build) deps; build build ;;
quickstart)
    deps
    build build
    ./build/spiral run experiments/quickstart.yaml          # writes runs/quickstart.h5
    ./build/spiral info runs/quickstart.h5
    PYTHONPATH=analysis /usr/bin/python3 -m spiral_analysis report runs/quickstart.h5 \
        -o runs/quickstart-report
    echo "quickstart output: $(pwd)/runs/quickstart.h5"
    echo "quickstart report: $(pwd)/runs/quickstart-report/report.html"
    ;;
test)
    deps
    build build
    ctest --test-dir build --output-on-failure -j "$JOBS"
    ;;
asan)
    deps
    build build-asan -DCMAKE_BUILD_TYPE=Debug -DSPIRAL_SANITIZE=ON
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir build-asan --output-on-failure -j "$JOBS"
    ;;
fuzz)
    deps
    # clang and its runtimes (libFuzzer, ASan: libclang-rt-dev, only
    # recommended by clang, so named here).
    fz=()
    for p in clang libclang-rt-dev; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || fz+=("$p")
    done
    if [ ${#fz[@]} -gt 0 ]; then
        sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update -q
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${fz[@]}"
    fi
    build build-fuzz -DCMAKE_C_COMPILER=clang -DSPIRAL_FUZZ=ON -DBUILD_TESTING=OFF
    mkdir -p build-fuzz/corpus
    cp fuzz/corpus/* build-fuzz/corpus/
    # A crash leaves crash-* here and exits non-zero.
    (cd build-fuzz && ./spiral-fuzz-snapshot -max_total_time="${2:-60}" -max_len=65536 \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 corpus 2>&1 | tail -15)
    ;;
bench)
    deps
    build build-release -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF
    ./build-release/spiral-bench "${@:2}"
    ;;
*)
    echo "usage: ./build.sh quickstart|test|deps|build|asan|bench|fuzz [SECONDS]" >&2
    exit 2
    ;;
esac
