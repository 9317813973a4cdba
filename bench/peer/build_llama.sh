#!/usr/bin/env bash
# build_llama.sh: fetch the llama-cpp-python source package from PyPI, extract the llama.cpp tree it
# vendors (vendor/llama.cpp) and build llama-bench and llama-quantize for the CPU only (native SIMD,
# no CUDA, no network code, Release). Called by bench/peer/run.py; can be run alone:
#
#   bench/peer/build_llama.sh WORK_DIR [JOBS]
#
# Leaves WORK_DIR/llama-build/bin/{llama-bench,llama-quantize} and WORK_DIR/llama-version.txt.
# A build that is already there is reused (delete WORK_DIR/llama-build to force a rebuild).
# LCP_SDIST=/path/to/llama_cpp_python-X.tar.gz uses that file instead of downloading it.
set -euo pipefail

LCP_VERSION=0.3.36
LCP_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e

die() { echo "build_llama: error: $*" >&2; exit 1; }
[ $# -ge 1 ] || die "usage: $0 WORK_DIR [JOBS]"
work=$1
jobs=${2:-$(nproc)}
# Only a folder this script or run.py made (marked by .trit-peer-work) or an empty one.
if [ -d "$work" ] && [ -n "$(ls -A "$work")" ] && [ ! -e "$work/.trit-peer-work" ]; then
    die "$work is not empty and has no .trit-peer-work marker: not a work folder of this benchmark"
fi
mkdir -p "$work" && touch "$work/.trit-peer-work"
work=$(cd "$work" && pwd)
sdist=$work/llama_cpp_python-$LCP_VERSION.tar.gz
src=$work/llama_cpp_python-$LCP_VERSION
build=$work/llama-build

if [ -x "$build/bin/llama-bench" ] && [ -x "$build/bin/llama-quantize" ] && [ -f "$work/llama-version.txt" ]; then
    echo "build_llama: reusing $build ($(cat "$work/llama-version.txt"))"
    exit 0
fi

# 1. the source package
if [ ! -f "$sdist" ]; then
    if [ -n "${LCP_SDIST:-}" ]; then
        [ -f "$LCP_SDIST" ] || die "LCP_SDIST=$LCP_SDIST does not exist"
        cp "$LCP_SDIST" "$sdist.part"
    else
        echo "build_llama: pip download llama-cpp-python==$LCP_VERSION (source package)"
        tmp=$(mktemp -d "$work/dl.XXXXXX")
        python3 -m pip download --no-deps --no-binary :all: "llama-cpp-python==$LCP_VERSION" -d "$tmp" \
            || die "pip download of llama-cpp-python==$LCP_VERSION failed"
        mv "$tmp/llama_cpp_python-$LCP_VERSION.tar.gz" "$sdist.part" && rmdir "$tmp"
    fi
    got=$(sha256sum "$sdist.part" | cut -d' ' -f1)
    [ "$got" = "$LCP_SHA256" ] || die "sha256 of the source package is $got, expected $LCP_SHA256"
    mv "$sdist.part" "$sdist"
fi

# 2. extract
if [ ! -f "$src/vendor/llama.cpp/CMakeLists.txt" ]; then
    echo "build_llama: extracting $sdist"
    rm -rf "$src"
    tar xzf "$sdist" -C "$work" || die "cannot extract $sdist"
    [ -f "$src/vendor/llama.cpp/CMakeLists.txt" ] || die "$sdist has no vendor/llama.cpp tree"
fi
lsrc=$src/vendor/llama.cpp

# The sdist has no git metadata; its CHANGELOG names the llama.cpp commit the release vendors.
commit=$(awk -v v="## [$LCP_VERSION]" '$0==v{f=1;next} f&&/^## \[/{exit} f' "$src/CHANGELOG.md" \
         | grep -o 'llama\.cpp@[0-9a-f]\{7,40\}' | head -1 | cut -d@ -f2 || true)
commit=${commit:-unknown}

# 3. configure and build. GIT_CEILING_DIRECTORIES stops llama.cpp's build-info from reading the
# commit of whatever git repository holds the work folder (trit's own, by default).
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
echo "build_llama: configuring llama.cpp $commit (CPU only, native, Release) in $build"
GIT_CEILING_DIRECTORIES=$work cmake -S "$lsrc" -B "$build" "${gen[@]}" \
    -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DGGML_CUDA=OFF -DGGML_NATIVE=ON -DGGML_BACKEND_DL=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_BUILD_COMMIT="$commit" -DLLAMA_BUILD_NUMBER=0 \
    > "$work/llama-configure.log" 2>&1 || { tail -30 "$work/llama-configure.log" >&2; die "cmake configure failed (log: $work/llama-configure.log)"; }
echo "build_llama: building llama-bench and llama-quantize with $jobs jobs (log: $work/llama-build.log)"
t0=$(date +%s)
# progress: one line per step, "[n/N] ..." from ninja or "[ p%] ..." from make
set +o pipefail
GIT_CEILING_DIRECTORIES=$work cmake --build "$build" --target llama-bench llama-quantize -j "$jobs" 2>&1 \
    | tee "$work/llama-build.log" | { grep --line-buffered -E '^\[ *[0-9]+(/[0-9]+|%)\]' || true; }
rc=${PIPESTATUS[0]}
set -o pipefail
[ "$rc" = 0 ] && [ -x "$build/bin/llama-bench" ] && [ -x "$build/bin/llama-quantize" ] \
    || { tail -30 "$work/llama-build.log" >&2; die "build failed (log: $work/llama-build.log)"; }
echo "build_llama: built in $(( $(date +%s) - t0 )) s"
echo "llama.cpp $commit (vendored by llama-cpp-python $LCP_VERSION; build number not recorded in the sdist)" \
    > "$work/llama-version.txt"
