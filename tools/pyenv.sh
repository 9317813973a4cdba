#!/usr/bin/env bash
# pyenv.sh: the Python environment of the serve tests (tests/serve, ctest label `serve`), of the
# Python package's tests (tests/python, ctest label `python`) and of the serving benchmark
# (bench/serve_bench.py), in .venv at the repository root (git-ignored).
#
#   bash tools/pyenv.sh            # .venv with the pinned openai client, numpy and pytest
#   bash tools/pyenv.sh --bench    # the same plus matplotlib, for serve_bench.py's PNG plot
#
# Needs python3 with its venv module: on Debian `apt-get install python3-venv` (python3.11-venv on
# bookworm). Packages come from PyPI, pinned in tests/serve/requirements.txt and
# tests/python/requirements.txt. Running it again reuses .venv and installs only what is missing;
# `rm -rf .venv` starts over.
set -euo pipefail
cd "$(dirname "$0")/.."

bench=0
for arg in "$@"; do
    case "$arg" in
        --bench) bench=1 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "pyenv.sh: unknown argument '$arg' (--bench, --help)" >&2; exit 2 ;;
    esac
done

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    if ! "$PY" -m venv .venv; then
        echo "pyenv.sh: '$PY -m venv' failed; on Debian: apt-get install python3-venv" >&2
        rm -rf .venv
        exit 1
    fi
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/serve/requirements.txt \
    -r tests/python/requirements.txt
if [ "$bench" = 1 ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check matplotlib==3.11.2
fi
.venv/bin/python -c "import numpy, openai, pytest; print('pyenv.sh: .venv ready: openai', openai.__version__, '/ numpy', numpy.__version__, '/ pytest', pytest.__version__)"
