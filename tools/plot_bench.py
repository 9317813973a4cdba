#!/usr/bin/env python3
"""plot_bench.py: PNG plots of the benchmark outputs, read exactly as the programs write them.

    tools/plot_bench.py FILE... -o PREFIX [--machine NAME] [--date YYYY-MM-DD] [--log FILE]
    tools/plot_bench.py FILE... --summary      markdown tables (fastest variant per shape and m)

The kind of each FILE is recognised from its contents:

  bench_kernels CSV (bench/bench_kernels.cu, header "model,layer,n,k,m,variant,...")
      PREFIX-gpu-speedup.png  speed-up over cuBLAS FP16 against m (log2 axis), one panel per shape,
                              one line per ternary variant, cuBLAS BF16 dashed, targets of
                              bench/README.md as red crosses where the shape has one
      PREFIX-gpu-gbps.png     achieved GB/s against m, one panel per shape, with the device-to-device
                              copy bandwidth measured in the same run as a horizontal line
  bench_cpu_gemm CSV (bench/bench_cpu_gemm.c --csv, header "shape,n,k,variant,threads,m,...")
      PREFIX-cpu-gbps.png     weight GB/s against m per variant (colour) and threads (line style), with
                              the streaming-read bandwidth of the same run per thread count
      PREFIX-cpu-gops.png     GOPS (2 m N K / time) against m, log scale, reference included
  `trit bench -o json` or `-o csv` (tools/cmd_bench.c); several files are one chart
      PREFIX-e2e.png          bars of tokens/s (mean, error bar = sd) per test, model, threads, head

Invalid rows (bench_kernels valid = 0) are never plotted. The machine in the titles comes from the
data where the data names it (bench_kernels JSON next to the CSV: "device"; the "# cpu:" line of a
bench_cpu_gemm log given with --log; trit bench "device"), else from --machine; the date from
--date, else the file's modification date. Needs matplotlib (not needed by the build or the tests).
"""
import argparse
import csv
import datetime
import json
import math
import os
import sys
import textwrap
from collections import OrderedDict, defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator  # noqa: E402

GPU_HEADER = ["model", "layer", "n", "k", "m", "variant", "p10_us", "median_us", "p90_us", "bytes", "gbps",
              "frac_copy", "speedup_vs_cublas_fp16", "valid"]
CPU_HEADER = ["shape", "n", "k", "variant", "threads", "m", "median_us", "min_us", "weight_gbps", "pct_read", "gops",
              "read_gbps", "calls"]
E2E_CSV_HEADER = ["model", "backend", "device", "threads", "head", "test", "avg_ts", "stddev_ts", "avg_ns"]

# The targets of bench/README.md: m = 1 by exact N x K, and m >= 16 by shape class (the 2B-4T
# shapes are the "2560 class", the 8B and 70B ones the "4096 x 14336 class").
TARGET_M1 = {(2560, 2560): 2.5, (2560, 6912): 3.5, (6912, 2560): 3.5, (4096, 14336): 5.5, (8192, 28672): 7.0}
TARGET_GEMM = {16: (5.0, 3.0), 64: (3.5, 2.5), 256: (1.6, 1.6), 2048: (1.5, 1.5)}

VARIANT_COLORS = {
    # GPU
    "gemv_dp4a": "tab:blue", "gemv_dp4a_f32": "tab:cyan", "gemv_add": "tab:purple",
    "gemm_mma": "tab:green", "gemm_mma_f32": "tab:olive", "cublas_fp16": "black", "cublas_bf16": "gray",
    # CPU
    "ref": "gray", "scalar": "tab:brown", "avx2": "tab:orange", "avx512": "tab:blue", "amx": "tab:red",
    "neon": "tab:green", "neon_dotprod": "tab:olive",
}
THREAD_STYLES = ["-", "--", ":", "-."]


def fail(msg):
    sys.exit("plot_bench.py: " + msg)


def color(variant, fallback_index=0):
    return VARIANT_COLORS.get(variant, "C%d" % (fallback_index % 10))


def kind_of(path):
    with open(path, newline="") as f:
        head = f.read(4096)
    stripped = head.lstrip()
    if stripped.startswith("[") or stripped.startswith("{"):
        return "e2e-json"
    first = head.splitlines()[0].strip() if head else ""
    cols = first.split(",")
    if cols == GPU_HEADER:
        return "gpu"
    if cols == CPU_HEADER:
        return "cpu"
    if cols == E2E_CSV_HEADER:
        return "e2e-csv"
    fail("%s: not a bench_kernels CSV, a bench_cpu_gemm CSV or trit bench output (first line %r)" % (path, first))


def file_date(path, given):
    if given:
        return given
    return datetime.date.fromtimestamp(os.path.getmtime(path)).isoformat()


def log2_axis(ax, ms):
    """x axis in log2 with a tick at every m that occurs."""
    ax.set_xscale("log", base=2)
    ticks = sorted(set(ms))
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: "%d" % v))
    if len(ticks) == 1:
        ax.set_xlim(ticks[0] / 2, ticks[0] * 2)


def grid_for(n):
    cols = min(4, n) if n != 9 else 3
    rows = int(math.ceil(n / cols))
    return rows, cols


def save(fig, path):
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print("wrote " + path)


def finish_grid(fig, axes, n_used, title, path):
    """Blanks the panels of a grid past the first n_used, titles the figure, leaves room for the
    legend at the bottom and saves it."""
    nc = len(axes[0])
    for idx in range(n_used, len(axes) * nc):
        axes[idx // nc][idx % nc].axis("off")
    fig.suptitle(title, fontsize=12)
    fig.tight_layout(rect=(0, 0.6 / fig.get_figheight(), 1, 0.97))
    save(fig, path)


# ---- GPU: bench_kernels --------------------------------------------------------------------------

def read_gpu(path):
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            for key in ("n", "k", "m"):
                r[key] = int(r[key])
            for key in ("p10_us", "median_us", "p90_us", "bytes", "gbps", "frac_copy", "speedup_vs_cublas_fp16"):
                r[key] = float(r[key])
            r["valid"] = r["valid"].strip() == "1"
            rows.append(r)
    return rows


def gpu_machine(path, given):
    if given:
        return given
    side = os.path.splitext(path)[0] + ".json"
    if os.path.exists(side):
        try:
            with open(side) as f:
                d = json.load(f)
            return "%s (%s SMs, L2 %.0f MB)" % (d.get("device", "?"), d.get("sm_count", "?"),
                                                 d.get("l2_bytes", 0) / 1048576)
        except (OSError, ValueError):
            pass
    return "unknown GPU (pass --machine)"


def plot_gpu(path, prefix, machine, date):
    rows = [r for r in read_gpu(path) if r["valid"]]
    if not rows:
        fail("%s: no valid rows" % path)
    shapes = OrderedDict()
    for r in rows:
        shapes.setdefault((r["model"], r["layer"], r["n"], r["k"]), []).append(r)
    copies = [r["gbps"] / r["frac_copy"] for r in rows if r["frac_copy"] > 0]
    copy_gbps = sorted(copies)[len(copies) // 2] if copies else 0.0
    ternary = [v for v in OrderedDict((r["variant"], 1) for r in rows)
               if not v.startswith("cublas") and v != "act_quant"]
    all_ms = [r["m"] for r in rows]
    title_tail = "%s, %s" % (machine, date)

    nr, nc = grid_for(len(shapes))

    def figure(draw, ylabel, title, name):
        """One panel per shape, which draw(ax, model, n, k, rs, by, handles) fills (by: variant -> m -> row);
        the axes, the legend of `handles` and the title are the same on both figures."""
        fig, axes = plt.subplots(nr, nc, figsize=(4.2 * nc, 3.3 * nr), squeeze=False)
        handles = OrderedDict()
        for idx, ((model, layer, n, k), rs) in enumerate(shapes.items()):
            ax = axes[idx // nc][idx % nc]
            by = defaultdict(dict)
            for r in rs:
                by[r["variant"]][r["m"]] = r
            draw(ax, model, n, k, rs, by, handles)
            log2_axis(ax, all_ms)
            ax.set_ylim(bottom=0)
            ax.set_title("%s %s  %dx%d" % (model, layer, n, k), fontsize=10)
            ax.set_xlabel("m (tokens)")
            ax.set_ylabel(ylabel)
            ax.grid(True, alpha=0.3)
        fig.legend(list(handles.values()), list(handles.keys()), loc="lower center", ncol=min(6, len(handles)),
                   bbox_to_anchor=(0.5, 0.0))
        finish_grid(fig, axes, len(shapes), title + "\n" + title_tail, prefix + name)

    def speedup(ax, model, n, k, rs, by, handles):
        """Speed-up over cuBLAS FP16 per ternary variant, cuBLAS BF16 dashed, the targets as crosses."""
        for vi, v in enumerate(ternary):
            pts = sorted((m, r["speedup_vs_cublas_fp16"]) for m, r in by[v].items() if r["speedup_vs_cublas_fp16"] > 0)
            if pts:
                (h,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=color(v, vi), ms=3.5, lw=1.4)
                handles.setdefault(v, h)
        bf = sorted((m, by["cublas_fp16"][m]["median_us"] / r["median_us"]) for m, r in by["cublas_bf16"].items()
                    if m in by["cublas_fp16"] and r["median_us"] > 0)
        if bf:
            (h,) = ax.plot([p[0] for p in bf], [p[1] for p in bf], "--", color=color("cublas_bf16"), lw=1.0)
            handles.setdefault("cublas_bf16", h)
        tx, ty = [], []
        big = model != "2b"
        for m in sorted(set(r["m"] for r in rs)):
            if m == 1 and (n, k) in TARGET_M1:
                tx.append(m), ty.append(TARGET_M1[(n, k)])
            elif m in TARGET_GEMM:
                tx.append(m), ty.append(TARGET_GEMM[m][0 if big else 1])
        if tx:
            (h,) = ax.plot(tx, ty, "x", color="red", ms=7, mew=2)
            handles.setdefault("target (bench/README.md)", h)
        ax.axhline(1.0, color="black", lw=0.8)

    def bandwidth(ax, model, n, k, rs, by, handles):
        """GB/s per variant (cuBLAS FP16 dashed) against the copy ceiling."""
        for vi, v in enumerate(ternary + ["cublas_fp16"]):
            pts = sorted((m, r["gbps"]) for m, r in by[v].items() if r["median_us"] > 0)
            if pts:
                style = "s--" if v.startswith("cublas") else "o-"
                (h,) = ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=color(v, vi), ms=3.5, lw=1.4)
                handles.setdefault(v, h)
        if copy_gbps > 0:
            h = ax.axhline(copy_gbps, color="red", lw=1.2)
            handles.setdefault("D2D copy, same run: %.0f GB/s" % copy_gbps, h)
            # bench/README.md: flag anything faster than the copy (suspect L2 residency)
            over = [(r["m"], r["gbps"]) for r in rs if r["gbps"] > copy_gbps and r["variant"] != "act_quant"]
            if over:
                (h,) = ax.plot([p[0] for p in over], [p[1] for p in over], "o", mfc="none", mec="red", ms=9, mew=1.5)
                handles.setdefault("above the copy bandwidth: check", h)

    figure(speedup, "speed-up over cuBLAS FP16",
           "Ternary kernels: speed-up over cublasGemmEx FP16 (median time, L2 defeated by rotation)",
           "-gpu-speedup.png")
    figure(bandwidth, "GB/s (weights + act. + out)",
           "Achieved bandwidth against the device-to-device copy bandwidth measured in the same run",
           "-gpu-gbps.png")


# ---- CPU: bench_cpu_gemm -------------------------------------------------------------------------

def read_cpu(path):
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            for key in ("n", "k", "threads", "m", "calls"):
                r[key] = int(r[key])
            for key in ("median_us", "min_us", "weight_gbps", "pct_read", "gops", "read_gbps"):
                r[key] = float(r[key])
            rows.append(r)
    return rows


def cpu_machine(log, given):
    if given:
        return given
    if log:
        with open(log) as f:
            for line in f:
                if line.startswith("# cpu:"):
                    return line.split(":", 1)[1].strip()
    return "unknown CPU (pass --machine or --log)"


def plot_cpu(path, prefix, machine, date):
    rows = read_cpu(path)
    if not rows:
        fail("%s: no rows" % path)
    shapes = OrderedDict()
    for r in rows:
        shapes.setdefault(r["shape"], []).append(r)
    variants = list(OrderedDict((r["variant"], 1) for r in rows))
    threads = sorted(set(r["threads"] for r in rows if r["variant"] != "ref"))
    style_of = {t: THREAD_STYLES[i % len(THREAD_STYLES)] for i, t in enumerate(threads)}
    read_bw = {}
    for r in rows:
        if r["variant"] != "ref":
            read_bw.setdefault(r["threads"], r["read_gbps"])
    all_ms = [r["m"] for r in rows]
    title_tail = "%s, %s" % (machine, date)
    nr, nc = grid_for(len(shapes))

    def legend(fig, with_read):
        hs = [Line2D([], [], color=color(v, i), marker="o", ms=3.5, lw=1.4) for i, v in enumerate(variants)
              if with_read is None or v != "ref"]
        ls = [v for v in variants if with_read is None or v != "ref"]
        hs += [Line2D([], [], color="black", ls=style_of[t], lw=1.2) for t in threads]
        ls += ["%d thread%s" % (t, "" if t == 1 else "s") for t in threads]
        if with_read:
            hs.append(Line2D([], [], color="red", ls="-", lw=1.0))
            ls.append("streaming read, same run (style = threads)")
            hs.append(Line2D([], [], color="red", marker="o", mfc="none", ls="none", ms=9))
            ls.append("above it")
        fig.legend(hs, ls, loc="lower center", ncol=min(8, len(hs)), bbox_to_anchor=(0.5, 0.0))

    for what in ("gbps", "gops"):
        fig, axes = plt.subplots(nr, nc, figsize=(4.4 * nc, 3.3 * nr), squeeze=False)
        for idx, (name, rs) in enumerate(shapes.items()):
            ax = axes[idx // nc][idx % nc]
            for vi, v in enumerate(variants):
                if what == "gbps" and v == "ref":
                    continue  # the canonical-layout reference reads far below 1 GB/s
                for t in sorted(set(r["threads"] for r in rs if r["variant"] == v)):
                    pts = sorted((r["m"], r["weight_gbps"] if what == "gbps" else r["gops"]) for r in rs
                                 if r["variant"] == v and r["threads"] == t)
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, lw=1.3,
                            ls=style_of.get(t, "-"), color=color(v, vi))
            if what == "gbps":
                for t in threads:
                    ax.axhline(read_bw[t], color="red", lw=1.0, ls=style_of[t])
                # faster than the read measured at start: the machine's load changed in between
                over = [(r["m"], r["weight_gbps"]) for r in rs if r["variant"] != "ref"
                        and r["weight_gbps"] > read_bw.get(r["threads"], float("inf"))]
                if over:
                    ax.plot([p[0] for p in over], [p[1] for p in over], "o", mfc="none", mec="red", ms=9, mew=1.3)
                ax.set_ylim(bottom=0)
                ax.set_ylabel("weight GB/s (median)")
            else:
                ax.set_yscale("log")
                ax.set_ylabel("GOPS (2mNK / median)")
            log2_axis(ax, all_ms)
            ax.set_title("%s  (N %d, K %d)" % (name, rs[0]["n"], rs[0]["k"]), fontsize=10)
            ax.set_xlabel("m (tokens)")
            ax.grid(True, alpha=0.3, which="both" if what == "gops" else "major")
        legend(fig, True if what == "gbps" else None)
        if what == "gbps":
            head = "CPU ternary GEMM: weight bytes read per second against the streaming-read bandwidth"
        else:
            head = "CPU ternary GEMM: operations per second (ref = scalar reference, 1 thread)"
        finish_grid(fig, axes, len(shapes), head + "\n" + title_tail, prefix + "-cpu-%s.png" % what)


# ---- end to end: trit bench ----------------------------------------------------------------------

def read_e2e(path, kind):
    out = []
    if kind == "e2e-json":
        with open(path) as f:
            data = json.load(f)
        if isinstance(data, dict):
            data = [data]
        for r in data:
            out.append({"model": r["model"], "device": r.get("device", ""), "threads": int(r.get("threads", 0)),
                        "head": r.get("head", "f16"), "test": r["test"], "avg_ts": float(r["avg_ts"]),
                        "stddev_ts": float(r.get("stddev_ts", 0.0))})
    else:
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                out.append({"model": r["model"], "device": r["device"], "threads": int(r["threads"]),
                            "head": r["head"], "test": r["test"], "avg_ts": float(r["avg_ts"]),
                            "stddev_ts": float(r["stddev_ts"])})
    return out


def plot_e2e(paths_kinds, prefix, machine, date):
    rows = []
    for p, k in paths_kinds:
        rows += read_e2e(p, k)
    if not rows:
        fail("no trit bench rows")
    tests = list(OrderedDict((r["test"], 1) for r in rows))
    configs = list(OrderedDict(((r["model"], r["device"], r["head"]), 1) for r in rows))
    models = list(OrderedDict((r["model"], 1) for r in rows))
    fig, axes = plt.subplots(1, len(tests), figsize=(max(4.5, 1.5 * len(configs) + 1.5) * len(tests), 4.8),
                             squeeze=False)
    for ti, test in enumerate(tests):
        ax = axes[0][ti]
        labels, vals, errs, cols = [], [], [], []
        for ci, cfg in enumerate(configs):
            rs = [r for r in rows if (r["model"], r["device"], r["head"]) == cfg and r["test"] == test]
            if not rs:
                continue
            r = rs[0]
            lines = [r["model"]] if len(models) > 1 else []
            lines += textwrap.wrap(r["device"], 18) + ["head " + r["head"]]
            labels.append("\n".join(lines))
            vals.append(r["avg_ts"])
            errs.append(r["stddev_ts"])
            cols.append("C%d" % ci)
        xs = list(range(len(vals)))
        ax.bar(xs, vals, yerr=errs, color=cols, capsize=4, width=0.6)
        for x, v, e in zip(xs, vals, errs):
            ax.annotate("%.3g" % v, (x, v + e), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=9)
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_ylabel("tokens/s (mean ± sd)")
        ax.set_title(test + ("  (prompt processing)" if test.startswith("pp") else "  (generation)"), fontsize=11)
        ax.set_ylim(0, max(v + e for v, e in zip(vals, errs)) * 1.15 if vals else 1)
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle("trit bench: end-to-end tokens/s%s\n%s, %s"
                 % (" (" + models[0] + ")" if len(models) == 1 else "", machine, date), fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    save(fig, prefix + "-e2e.png")


# ---- markdown summaries (--summary) --------------------------------------------------------------

def summary_cpu(path):
    """Per shape and m: the fastest kernel row (median), with the scalar reference for scale."""
    rows = read_cpu(path)
    out = ["| shape (N x K) | m | fastest kernel, threads | median µs | min µs | weight GB/s | % of read | GOPS |"
           " ref GOPS |", "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    shapes = OrderedDict()
    for r in rows:
        shapes.setdefault(r["shape"], []).append(r)
    for name, rs in shapes.items():
        for m in sorted(set(r["m"] for r in rs)):
            ks = [r for r in rs if r["m"] == m and r["variant"] != "ref"]
            ref = [r for r in rs if r["m"] == m and r["variant"] == "ref"]
            if not ks:
                continue
            b = min(ks, key=lambda r: r["median_us"])
            out.append("| %s | %d | %s, %d | %.1f | %.1f | %.1f | %.0f%% | %.1f | %s |" % (
                name, m, b["variant"], b["threads"], b["median_us"], b["min_us"], b["weight_gbps"], b["pct_read"],
                b["gops"], "%.2f" % ref[0]["gops"] if ref else "skipped"))
    return "\n".join(out)


def summary_gpu(path):
    rows = [r for r in read_gpu(path) if r["valid"]]
    out = ["| model | layer | N x K | m | fastest ternary | median µs (p10-p90) | GB/s | % copy | x cuBLAS FP16 |",
           "|---|---|---|---:|---|---:|---:|---:|---:|"]
    keys = OrderedDict(((r["model"], r["layer"], r["n"], r["k"], r["m"]), 1) for r in rows)
    for key in keys:
        ks = [r for r in rows if (r["model"], r["layer"], r["n"], r["k"], r["m"]) == key
              and r["speedup_vs_cublas_fp16"] > 0]
        if ks:
            b = min(ks, key=lambda r: r["median_us"])
            out.append("| %s | %s | %dx%d | %d | %s | %.2f (%.2f-%.2f) | %.0f | %.0f%% | %.2f |" % (
                key[0], key[1], key[2], key[3], key[4], b["variant"], b["median_us"], b["p10_us"], b["p90_us"],
                b["gbps"], 100 * b["frac_copy"], b["speedup_vs_cublas_fp16"]))
    return "\n".join(out)


def summary_e2e(paths_kinds):
    out = ["| model | device | head | test | t/s (mean ± sd) |", "|---|---|---|---|---:|"]
    for p, k in paths_kinds:
        for r in read_e2e(p, k):
            out.append("| %s | %s | %s | %s | %.2f ± %.2f |" % (r["model"], r["device"], r["head"], r["test"],
                                                                r["avg_ts"], r["stddev_ts"]))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("files", nargs="+", help="bench_kernels CSV, bench_cpu_gemm CSV, trit bench JSON/CSV")
    ap.add_argument("-o", "--out", help="output prefix: PREFIX-<plot>.png")
    ap.add_argument("--summary", action="store_true", help="print markdown summary tables instead of plotting")
    ap.add_argument("--machine", help="machine name for the titles (default: from the data)")
    ap.add_argument("--date", help="date for the titles (default: the file's modification date)")
    ap.add_argument("--log", help="bench_cpu_gemm stdout, for its '# cpu:' line")
    a = ap.parse_args()
    if a.summary:
        kinds = [(p, kind_of(p)) for p in a.files]
        for p, k in kinds:
            if k == "gpu":
                print(summary_gpu(p) + "\n")
            elif k == "cpu":
                print(summary_cpu(p) + "\n")
        e2e = [(p, k) for p, k in kinds if k.startswith("e2e")]
        if e2e:
            print(summary_e2e(e2e) + "\n")
        return
    if not a.out:
        ap.error("-o PREFIX is required when plotting")
    out_dir = os.path.dirname(a.out)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
    e2e = []
    for p in a.files:
        k = kind_of(p)
        if k == "gpu":
            plot_gpu(p, a.out, gpu_machine(p, a.machine), file_date(p, a.date))
        elif k == "cpu":
            plot_cpu(p, a.out, cpu_machine(a.log, a.machine), file_date(p, a.date))
        else:
            e2e.append((p, k))
    if e2e:
        machine = a.machine
        if not machine:
            devs = OrderedDict((r["device"], 1) for p, k in e2e for r in read_e2e(p, k))
            machine = " / ".join(devs) or "unknown machine"
        plot_e2e(e2e, a.out, machine, file_date(e2e[0][0], a.date))


if __name__ == "__main__":
    main()
