#!/usr/bin/env bash
# setup.sh: install trit's build dependencies (Debian), build it, and run the default model.
#
#   bash tools/setup.sh            # install, build into build/, run the shipped model once
#   TRIT_CUDA=OFF bash tools/setup.sh   # CPU-only build even where nvcc exists
#
# Needs root (or sudo) for apt-get. Everything else happens in the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
    build-essential cmake pkg-config clang \
    libcriterion-dev libpcre2-dev libcjson-dev libmicrohttpd-dev libopenmpi-dev openmpi-bin qemu-user curl python3-venv

# The serve tests' Python environment (.venv: the openai client and pytest, pinned; PyPI)
bash tools/pyenv.sh

JOBS=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DTRIT_CUDA="${TRIT_CUDA:-ON}"
cmake --build build -j"$JOBS"

if [ -x build/trit ] && build/trit run --help >/dev/null 2>&1; then
    build/trit run -p "${TRIT_PROMPT:-In the beginning}" -n 64
else
    build/trit version
    echo "setup: built. (trit run arrives with the CPU engine; see README)"
fi
