#!/usr/bin/env python3
"""run.py: trit against llama.cpp on the same ternary model file, same threads, interleaved runs.

    bench/peer/run.py                      # all cores, 3 repetitions, pp512 and tg128, TQ2_0 and Q2_0
    bench/peer/run.py -t 2 -r 5 --tests tg128 --types tq2_0

Steps (each reuses what an earlier run left in the work folder):
  1. build    llama.cpp from the llama-cpp-python source package on PyPI (its vendor/llama.cpp):
              llama-bench and llama-quantize, CPU only (bench/peer/build_llama.sh)
  2. model    a random ternary model of the BitNet b1.58 2B-4T shape in llama.cpp's `bitnet`
              architecture, F16, with a synthetic vocabulary (bench/peer/gen_model.py, run with
              gguf==0.19.0 from PyPI in a virtual environment in the work folder)
  3. quantize llama-quantize to TQ2_0, and to Q2_0 where the vendored llama.cpp has it, keeping the
              token embedding (the tied head) F16
  4. bandwidth  the streaming read bandwidth, from trit's build/bench/bench_cpu_gemm
  5. bench    for each file and test: one warm-up run of each engine, then R rounds of
              llama-bench (one repetition) followed by `trit bench` (one repetition, f16 and int8
              head); every run is a fresh process with its own time limit
  6. report   one markdown table, printed and written to bench/results/peer-<cpu>-<date>.md

Needs: python3 (3.9+), cmake, a C/C++ compiler, pip with access to PyPI, and a built trit
(cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build). About 8 GB of disk in the
work folder (the F16 model is 4.8 GB).
"""
import argparse
import datetime
import glob
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
GGUF_PIN = "gguf==0.19.0"
MARKER = ".trit-peer-work"  # marks a work folder this script created
RESULT_TAG = "<!-- written by bench/peer/run.py -->"
TESTS = {"pp512": (512, 0), "tg128": (0, 128)}
TYPES = {"tq2_0": "TQ2_0", "q2_0": "Q2_0"}

phase_times = []  # (phase, seconds, or None when an earlier run's output was reused)


def say(msg):
    print(msg, flush=True)


def die(msg):
    print(f"run.py: error: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def phase(name):
    """Context manager that times a step and prints its start and end."""
    class P:
        def __enter__(self):
            self.t0 = time.time()
            say(f"\n== {name} (load average {loadavg()})")

        def __exit__(self, *exc):
            dt = time.time() - self.t0
            if (name, None) not in phase_times:
                phase_times.append((name, dt))
            if exc[0] is None:
                say(f"== {name}: {dt:.0f} s")
    return P()


def run_logged(cmd, log, timeout=None, stdout_file=None):
    """Runs cmd in its own process group, stderr (and stdout unless stdout_file) to `log`; on timeout
    kills that group. Returns (returncode or 'timeout', seconds)."""
    t0 = time.time()
    with open(log, "w") as err, open(stdout_file or os.devnull, "w") as out:
        p = subprocess.Popen(cmd, stdout=out if stdout_file else err, stderr=err, start_new_session=True)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            rc = "timeout"
    return rc, time.time() - t0


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return os.uname().machine


def cpu_short(model, ncpu):
    s = re.sub(r"\((R|TM|tm)\)|\bCPU\b|\bProcessor\b|@.*$|\d+-Core", " ", model)
    s = re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")
    return f"{s or 'cpu'}-{ncpu}cpu"


def prepare_work(work):
    """Creates the work folder, or checks that an existing one is ours."""
    if os.path.isdir(work) and os.listdir(work) and not os.path.exists(os.path.join(work, MARKER)):
        die(f"{work} exists, is not empty and was not made by this script (no {MARKER}); "
            "pick another folder with --work")
    os.makedirs(work, exist_ok=True)
    open(os.path.join(work, MARKER), "a").close()
    for sub in ("models", "runs"):
        os.makedirs(os.path.join(work, sub), exist_ok=True)


def results_path(requested, short, day):
    """The results file: the one asked for, else bench/results/peer-<cpu>-<date>[-N].md; a file that
    exists is replaced only when this script wrote it."""
    def ours(p):
        try:
            with open(p) as f:
                return f.readline().strip() == RESULT_TAG
        except OSError:
            return False
    if requested:
        if os.path.exists(requested) and not ours(requested):
            die(f"{requested} exists and was not written by this script; not overwriting it")
        return requested
    base = os.path.join(REPO, "bench", "results", f"peer-{short}-{day}")
    p, n = base + ".md", 2
    while os.path.exists(p) and not ours(p):
        p, n = f"{base}-{n}.md", n + 1
    return p


# ---- steps ------------------------------------------------------------------------------------

def build_llama(work, jobs):
    if os.path.exists(os.path.join(work, "llama-version.txt")):
        phase_times.append(("build llama.cpp", None))
    with phase("build llama.cpp"):
        rc = subprocess.call([os.path.join(HERE, "build_llama.sh"), work, str(jobs)])
        if rc != 0:
            die("building llama.cpp failed (see the messages above)")
    with open(os.path.join(work, "llama-version.txt")) as f:
        return f.read().strip()


def gguf_python(work):
    venv = os.path.join(work, "venv")
    py = os.path.join(venv, "bin", "python")
    want = GGUF_PIN.split("==")[1]
    check = [py, "-c", "import importlib.metadata as m, numpy; print(m.version('gguf'))"]
    if os.path.exists(py) and subprocess.run(check, capture_output=True, text=True).stdout.strip() == want:
        say(f"reusing {venv} ({GGUF_PIN})")
        phase_times.append(("python environment", None))
        return py
    with phase(f"python environment ({GGUF_PIN})"):
        if not os.path.exists(py) and subprocess.call([sys.executable, "-m", "venv", venv]) != 0:
            die(f"python3 -m venv {venv} failed (Debian/Ubuntu: apt-get install python3-venv)")
        if subprocess.call([py, "-m", "pip", "install", "-q", GGUF_PIN]) != 0:
            die(f"pip install {GGUF_PIN} failed")
    return py


def make_models(work, py, types, threads):
    models = os.path.join(work, "models")
    f16 = os.path.join(models, "bitnet-2b4t-f16.gguf")
    quant = os.path.join(work, "llama-build", "bin", "llama-quantize")
    need = [t for t in types if not os.path.exists(os.path.join(models, f"bitnet-2b4t-{t}.gguf"))]
    if not need or os.path.exists(f16):
        if need:
            say(f"reusing {f16}")
        phase_times.append(("generate the F16 model", None))
    else:
        with phase("generate the F16 model"):
            if subprocess.call([py, os.path.join(HERE, "gen_model.py"), f16]) != 0:
                die("gen_model.py failed")
    files = {}
    for t in types:
        out = os.path.join(models, f"bitnet-2b4t-{t}.gguf")
        if os.path.exists(out):
            say(f"reusing {out}")
            phase_times.append((f"quantize to {TYPES[t]}", None))
        else:
            with phase(f"quantize to {TYPES[t]}"):
                log = os.path.join(work, f"quantize-{t}.log")
                cmd = [quant, "--token-embedding-type", "f16", "--output-tensor-type", "f16",
                       f16, out + ".part", TYPES[t], str(threads)]
                say("  " + " ".join(cmd) + f"  (log: {log})")
                rc, _ = run_logged(cmd, log)
                if rc != 0:
                    with open(log) as f:
                        sys.stderr.write("".join(f.readlines()[-15:]))
                    die(f"llama-quantize to {TYPES[t]} failed (log: {log})")
                os.replace(out + ".part", out)
        files[t] = out
    return files


def has_q2_0(work):
    """Whether the vendored ggml knows GGML_TYPE_Q2_0 (it is newer than TQ2_0)."""
    for h in glob.glob(os.path.join(work, "llama_cpp_python-*", "vendor", "llama.cpp", "ggml", "include", "ggml.h")):
        with open(h) as f:
            return re.search(r"GGML_TYPE_Q2_0\s*=", f.read()) is not None
    return False


def bandwidth(trit, threads):
    exe = os.path.join(os.path.dirname(os.path.abspath(trit)), "bench", "bench_cpu_gemm")
    if not os.access(exe, os.X_OK):
        return f"not measured ({exe} is missing: build trit's benchmarks)"
    with phase("read bandwidth"):
        r = subprocess.run([exe, "--shapes", "256x256", "--m", "1", "--threads", str(threads),
                            "--variants", "scalar", "--min-ms", "20"], capture_output=True, text=True)
    m = re.search(r"^# bandwidth, (.*?), median:.*?read ([0-9.]+) GB/s", r.stdout, re.M)
    if not m:
        return "not measured (bench_cpu_gemm printed no bandwidth line)"
    return (f"{m.group(2)} GB/s streaming read, {threads} threads (trit's build/bench/bench_cpu_gemm: "
            f"median of {m.group(1)})")


# ---- the benchmark ----------------------------------------------------------------------------

def engine_run(cmd, timeout, log):
    """One engine run: its JSON rows from stdout, or {"status": why not}."""
    rc, _ = run_logged(cmd, log, timeout, stdout_file=log + ".json")
    if rc == "timeout":
        return {"status": f"timed out after {timeout} s"}
    try:
        with open(log + ".json") as f:
            rows = json.load(f) if rc == 0 else None
    except ValueError:
        rows = None
    if not rows:
        with open(log) as f:
            return {"status": f"failed (exit {rc}): {last_error(f.read())}"}
    return {"rows": rows}


def llama_run(work, model, test, threads, timeout, log):
    p, n = TESTS[test]
    cmd = [os.path.join(work, "llama-build", "bin", "llama-bench"), "-m", model, "-p", str(p), "-n", str(n),
           "-r", "1", "-t", str(threads), "-o", "json"]
    out = engine_run(cmd, timeout, log)
    if "rows" in out:
        out = {"f16": out["rows"][0]["samples_ts"][0], "info": out["rows"][0]}
    return out, cmd


def trit_run(trit, model, test, threads, timeout, log):
    p, n = TESTS[test]
    cmd = [trit, "bench", "-m", model, "-p", str(p), "-n", str(n), "-r", "1", "-t", str(threads),
           "--head", "model,int8,q4", "--device", "cpu", "-o", "json"]
    out = engine_run(cmd, timeout, log)
    if "rows" in out:
        out = dict({r["head"]: r["samples_ts"][0] for r in out["rows"]}, info=out["rows"][0])
    return out, cmd


def last_error(text):
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    errs = [l for l in lines if re.search(r"error|fail|unsupported|cannot|invalid", l, re.I)]
    return (errs or lines or ["no output"])[-1][:400]


def bench(work, trit, files, tests, threads, reps, timeout):
    """Returns {(engine, type, head, test): [tok/s...] or a status string}, the last command of each
    engine, the 1-min load averages seen before each run, each engine's last JSON row, the log folder.
    An engine that fails (not: times out) on a file is not run on that file again."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    logs = os.path.join(work, "runs", stamp)
    os.makedirs(logs)
    res, cmds, loads, infos, broken = {}, {}, [], {}, {}
    for t, model in files.items():
        for test in tests:
            engines = {"llama.cpp": (["f16"], lambda lg: llama_run(work, model, test, threads, timeout, lg)),
                       "trit": (["f16", "int8", "q4"], lambda lg: trit_run(trit, model, test, threads, timeout, lg))}
            alive = {e: v for e, v in engines.items() if (e, t) not in broken}
            for e in engines:
                if (e, t) in broken:
                    for h in engines[e][0]:
                        res[(e, t, h, test)] = broken[(e, t)]
            for rnd in range(reps + 1):  # round 0 is the warm-up
                for eng, (heads, fn) in list(alive.items()):
                    loads.append(float(loadavg().split()[0]))
                    log = os.path.join(logs, f"{eng}-{t}-{test}-{rnd}.log")
                    t0 = time.time()
                    out, cmd = fn(log)
                    cmds[(eng, test)] = cmd
                    what = "warm-up" if rnd == 0 else f"rep {rnd}/{reps}"
                    if "status" in out:
                        say(f"  {TYPES[t]} {test} {what} {eng}: {out['status']} (log: {log})")
                        for h in heads:
                            res[(eng, t, h, test)] = out["status"]
                        del alive[eng]
                        if out["status"].startswith("failed"):
                            broken[(eng, t)] = out["status"]
                        continue
                    infos[eng] = out["info"]
                    vals = ", ".join(f"{h} {out[h]:.2f}" for h in heads)
                    say(f"  {TYPES[t]} {test} {what} {eng}: {vals} tok/s ({time.time() - t0:.0f} s)")
                    if rnd > 0:
                        for h in heads:
                            res.setdefault((eng, t, h, test), []).append(out[h])
    return res, cmds, loads, infos, logs


def cell(v, failures):
    """A table cell; a failure's message goes to the notes under the table, once."""
    if v is None:
        return "not run"
    if isinstance(v, str) and v.startswith("failed"):
        if v not in failures:
            failures.append(v)
        return f"failed ({failures.index(v) + 1})"
    if isinstance(v, str):
        return v
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    return f"{statistics.mean(v):.2f} ± {sd:.2f}"


def main():
    ncpu = len(os.sched_getaffinity(0))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-t", "--threads", type=int, default=ncpu, help=f"threads for both engines (default: all cores, {ncpu})")
    ap.add_argument("-r", "--reps", type=int, default=3, help="timed repetitions per engine, after one warm-up (default 3)")
    ap.add_argument("--tests", default="pp512,tg128", help="pp512, tg128 or both (default pp512,tg128)")
    ap.add_argument("--types", default="tq2_0,q2_0",
                    help="llama.cpp file types: tq2_0, q2_0 or both (default both; q2_0 only where the vendored llama.cpp has it)")
    ap.add_argument("--timeout", type=int, default=600, help="time limit of one engine run, in seconds (default 600)")
    ap.add_argument("-w", "--work", default=os.environ.get("TRIT_PEER_DIR", os.path.join(HERE, ".work")),
                    help="work folder for llama.cpp, the venv and the model files (default $TRIT_PEER_DIR, else bench/peer/.work)")
    ap.add_argument("--trit", default=os.path.join(REPO, "build", "trit"), help="the trit binary (default build/trit)")
    ap.add_argument("-j", "--jobs", type=int, default=ncpu, help=f"parallel jobs for the llama.cpp build (default {ncpu})")
    ap.add_argument("-o", "--out", help="results file (default bench/results/peer-<cpu>-<YYYYMMDD>.md; "
                    "an existing file is replaced only if this script wrote it)")
    ap.add_argument("--no-save", action="store_true", help="print the table without writing a results file")
    a = ap.parse_args()

    tests = [x for x in a.tests.split(",") if x]
    types = [x for x in a.types.split(",") if x]
    if not tests or any(x not in TESTS for x in tests):
        die(f"--tests takes a comma-separated list of {', '.join(TESTS)}")
    if not types or any(x not in TYPES for x in types):
        die(f"--types takes a comma-separated list of {', '.join(TYPES)}")
    if a.threads < 1 or a.reps < 1 or a.timeout < 1 or a.jobs < 1:
        die("--threads, --reps, --timeout and --jobs must be positive")
    trit = os.path.abspath(a.trit)
    if not os.access(trit, os.X_OK):
        die(f"{trit} is not an executable: build trit first "
            "(cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j)")
    for tool in ("cmake", "tar"):
        if not shutil.which(tool):
            die(f"{tool} is not on PATH")
    work = os.path.abspath(a.work)
    model_name = cpu_model()
    day = datetime.date.today().strftime("%Y%m%d")
    out_md = None if a.no_save else results_path(a.out, cpu_short(model_name, ncpu), day)
    prepare_work(work)
    t_start = time.time()
    load_start = loadavg()

    llama_version = build_llama(work, a.jobs)
    notes = []
    if "q2_0" in types and not has_q2_0(work):
        types.remove("q2_0")
        notes.append("Q2_0: not run: the vendored llama.cpp's ggml.h has no GGML_TYPE_Q2_0.")
        say("note: " + notes[-1])
    if not types:
        die("no file type left to run")
    py = gguf_python(work)
    files = make_models(work, py, types, a.threads)
    bw = bandwidth(trit, a.threads)
    with phase("bench"):
        res, cmds, loads, infos, logs = bench(work, trit, files, tests, a.threads, a.reps, a.timeout)
    load_end = loadavg()

    # ---- report
    trit_rev = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"], capture_output=True,
                              text=True).stdout.strip() or "unknown"
    lines = []
    lines.append(f"# Peer benchmark: trit and llama.cpp on one ternary 2B-4T-shaped file, {datetime.date.today()}")
    lines.append("")
    lines.append(f"- CPU: {model_name} ({ncpu} logical CPUs available); threads: {a.threads} for both engines")
    lines.append(f"- repetitions: {a.reps} per engine, interleaved (llama-bench, then trit bench, in turn), "
                 "after one warm-up run of each; each run is a new process and runs its own warm-up pass first")
    lines.append(f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}")
    li, ti = infos.get("llama.cpp", {}), infos.get("trit", {})
    lines.append(f"- llama.cpp: {llama_version}; CPU-only build (GGML_NATIVE, no CUDA)"
                 + (f"; llama-bench reports backend {li['backends']}, build {li['build_commit']}, cpu \"{li['cpu_info']}\""
                    if li else ""))
    lines.append(f"- trit: {trit_rev} ({os.path.relpath(trit, REPO) if trit.startswith(REPO) else trit})"
                 + (f"; device \"{ti['device']}\"" if ti else ""))
    lines.append(f"- read bandwidth: {bw}")
    lines.append(f"- load average (1/5/15 min): {load_start} at start, {load_end} at end; 1-min load before "
                 f"the timed runs: {min(loads):.2f} to {max(loads):.2f}" if loads else "")
    lines.append("- model: random ternary weights, 30 layers, dim 2560, ffn 6912, 20/5 heads, vocab 128256, "
                 "tied F16 token embedding (the head), llama.cpp `bitnet` architecture (SiLU gate), made by "
                 "bench/peer/gen_model.py and quantized by the built llama-quantize "
                 "(--token-embedding-type f16 --output-tensor-type f16)")
    lines.append("")
    lines.append(f"| engine | file type | head | {' | '.join(f'{x} tok/s' for x in tests)} |")
    lines.append("| --- | --- | --- |" + " ---: |" * len(tests))
    failures = []
    for t in types:
        for eng, heads in (("llama.cpp", ["f16"]), ("trit", ["f16", "int8", "q4"])):
            for h in heads:
                cells = [cell(res.get((eng, t, h, x)), failures) for x in tests]
                lines.append(f"| {eng} | {TYPES[t]} | {h} | {' | '.join(cells)} |")
    lines.append("")
    lines.extend(f"- ({i + 1}) {msg}" for i, msg in enumerate(failures))
    lines.extend(f"- {n}" for n in notes)
    lines.append("- mean ± sample standard deviation of the per-run tok/s; llama.cpp's head is its F16 "
                 "token-embedding matmul; trit's int8 and 4-bit heads are `--head int8` and `--head q4` "
                 "(their perplexity cost: docs/perf.md).")
    if loads and max(loads) > a.threads + 0.5:
        lines.append(f"- the 1-min load average reached {max(loads):.2f} with {a.threads} benchmark threads on "
                     f"{ncpu} CPUs: other processes competed for the cores, so these numbers are noisy; an idle "
                     "machine gives the fair comparison.")
    runs = [f"{e} {TYPES[t]} {h} {x}: {', '.join(f'{v:.2f}' for v in r)}"
            for (e, t, h, x), r in sorted(res.items()) if isinstance(r, list)]
    lines.append("- per-run tok/s: " + "; ".join(runs) if runs else None)
    lines.append("- files: " + ", ".join(f"{TYPES[t]} {os.path.getsize(f) / 2**30:.2f} GiB" for t, f in files.items()))
    lines.append(f"- time per step: " + ", ".join(f"{n} {'reused' if s is None else f'{s:.0f} s'}" for n, s in phase_times)
                 + f"; total {time.time() - t_start:.0f} s")
    lines.append("")
    lines.append("Commands of one run (FILE = the quantized model in the work folder):")
    lines.append("")
    lines.append("```")
    for key in sorted(cmds, key=lambda k: (tests.index(k[1]), k[0])):
        c = ["FILE" if x.endswith(".gguf") else x for x in cmds[key]]
        c[0] = os.path.relpath(c[0], REPO) if c[0].startswith(REPO) else c[0]
        lines.append(" ".join(c))
    lines.append("```")
    lines.append("")
    lines.append(f"Reproduce: `bench/peer/run.py {shlex.join(sys.argv[1:])}` (`--help` for the options).")
    text = "\n".join(l for l in lines if l is not None)
    say("\n" + text)
    say(f"\nlogs of every run: {logs}")
    if out_md:
        os.makedirs(os.path.dirname(out_md), exist_ok=True)
        with open(out_md, "w") as f:
            f.write(RESULT_TAG + "\n" + text + "\n")
        say(f"written to {out_md}")


if __name__ == "__main__":
    main()
