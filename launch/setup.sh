#!/usr/bin/env bash
# Installs what qtrain needs on a Debian/Ubuntu machine, when missing:
# Open MPI, OpenBLAS, zlib, libzstd and librsvg (development files; zlib is what ZIPFoundation
# inflates with and, with libzstd, what streams .gz/.zst corpora into `prepare`; librsvg draws
# `report --out x.png`) and a font for it, pkg-config, Python with pip
# (for `prepare`), and
# oneDNN (libdnnl-dev: its headers let the build include the BF16 matmul; the int8 and bf16
# compute paths load the library when they run; without it they fall back to fp32).
# Swift itself (6.0 or newer) must already be on PATH. Safe to run again: it only installs
# what is absent. Set QTRAIN_SKIP_APT=1 to skip the package step.
set -euo pipefail

need=()
command -v pkg-config >/dev/null || need+=(pkg-config)
pkg-config --exists openblas 2>/dev/null || need+=(libopenblas-dev)
pkg-config --exists ompi-c 2>/dev/null || need+=(libopenmpi-dev)
command -v mpirun >/dev/null || need+=(openmpi-bin)
pkg-config --exists zlib 2>/dev/null || need+=(zlib1g-dev)
pkg-config --exists libzstd 2>/dev/null || need+=(libzstd-dev)
pkg-config --exists librsvg-2.0 2>/dev/null || need+=(librsvg2-dev)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
command -v python3 >/dev/null || need+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
[ -e /usr/include/oneapi/dnnl/dnnl.h ] && { [ -e /usr/lib/x86_64-linux-gnu/libdnnl.so.2 ] \
    || [ -e /usr/lib/aarch64-linux-gnu/libdnnl.so.2 ] || ldconfig -p 2>/dev/null | grep -q 'libdnnl\.so\.2'; } \
    || need+=(libdnnl-dev)

if [ "${#need[@]}" -gt 0 ] && [ "${QTRAIN_SKIP_APT:-0}" != 1 ]; then
    echo "setup: installing ${need[*]}"
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi

command -v swift >/dev/null || { echo "setup: swift is not on PATH; install Swift 6 from swift.org" >&2; exit 1; }
echo "setup: $(swift --version 2>/dev/null | head -1); OpenBLAS $(pkg-config --modversion openblas); Open MPI $(pkg-config --modversion ompi-c)"
