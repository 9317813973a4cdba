#!/bin/sh
# Shape sweep: equal wall-clock budget per run (--minutes), one thread each, two runs at a time.
# Results: runs/sweep-*/summary.json, tabulated in SWEEP.md.
set -e
cd "$(dirname "$0")"
PY=${PY:-/opt/trainenv/bin/python}
MIN=${MIN:-7}
run() { name=$1; shift; $PY train.py --name "sweep-$name" --minutes "$MIN" --threads 1 "$@" > "runs/sweep-$name.out" 2>&1; }
run d256-L4 --hidden 256 --inter 768 --layers 4 --heads 4 --kv-heads 2 &
run d256-L8 --hidden 256 --inter 768 --layers 8 --heads 4 --kv-heads 2 &
wait
run d384-L6 --hidden 384 --inter 1024 --layers 6 --heads 6 --kv-heads 2 &
run d512-L6 --hidden 512 --inter 1408 --layers 6 --heads 8 --kv-heads 2 &
wait
