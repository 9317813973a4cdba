#!/usr/bin/env python3
"""serve_bench.py: the serving benchmark of `trit serve`: concurrent streaming clients against one
server, per model, at 1, 2, 4, 8 and 16 streams.

    bench/serve_bench.py --trit build/trit -m synthetic:2b4t -t 2                     # table on stdout
    bench/serve_bench.py --trit build/trit -m models/trit-kjv-4m.gguf -m synthetic:2b4t -t 2 \\
        -o bench/results/serve-MACHINE-DATE                                           # .md .csv .png
    bench/serve_bench.py --url http://127.0.0.1:8080 -m trit-kjv-4m                   # a running server
    bench/serve_bench.py --plot bench/results/serve-MACHINE-DATE.csv -o PREFIX        # the PNG again

For each model it starts `trit serve -m MODEL -t N --parallel MAX --host 127.0.0.1 --port 0` (the
port from its `listening on` line; --parallel the largest concurrency, -c and -b the whole of one
stream's prompt and output, --kv-tokens that times --parallel), waits for /health, sends one
warm-up request, then for each concurrency C runs C client threads, each sending --requests
streaming requests one after the other (a closed loop), all released together. Every request is the same work: a fixed prompt of
about --prompt-tokens tokens (token ids for synthetic models, which have no tokenizer; KJV text
otherwise), a different one per client, --max-tokens output tokens with ignore_eos (so no request
ends early) at temperature 0. It stops the server (SIGTERM) when the model is done.

Measured on the client (stdlib http.client, one connection per request, loopback):
  req/s        requests completed / wall time of the level (first send to last byte)
  out tok/s    output tokens (usage.completion_tokens) / the same wall time: aggregate throughput
  TTFT         time to first token: request sent -> first SSE event that carries text or token ids
  ITL          inter-token latency: the time between two consecutive token-carrying events of one
               stream, divided by the tokens the later one carries (return_token_ids says how many)
p50/p99 are over all requests (TTFT) or all gaps (ITL) of a level, nearest-rank.

Writes a markdown table on stdout; with -o PREFIX also PREFIX.csv, PREFIX.md (machine, commit,
commands, load average, the table) and PREFIX.png (aggregate tok/s and ITL against concurrency;
needs matplotlib: `bash tools/pyenv.sh --bench` puts it in .venv). Never fails on speed; it fails
(exit 1) when a request fails or returns other than --max-tokens tokens.
"""
import argparse
import csv
import datetime
import http.client
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSV_HEADER = ["model", "threads", "concurrency", "requests", "prompt_tokens", "max_tokens", "wall_s", "req_per_s",
              "out_tok_per_s", "ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms", "failed"]
TEXT = ("In the beginning God created the heaven and the earth. And the earth was without form, and void; "
        "and darkness was upon the face of the deep. And the Spirit of God moved upon the face of the waters. "
        "And God said, Let there be light: and there was light. And God saw the light, that it was good: and God "
        "divided the light from the darkness. And God called the light Day, and the darkness he called Night.")


def fail(msg):
    sys.exit("serve_bench.py: " + msg)


def percentile(xs, p):
    """Nearest-rank percentile of a non-empty list."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


# ---- the server ---------------------------------------------------------------------------------
class Server:
    def __init__(self, trit, model, threads, parallel, ctx, kv_tokens, extra):
        # -b = -c: the context cuts its batch to -c anyway, and the scheduler must not plan more
        self.cmd = [trit, "serve", "-m", model, "-t", str(threads), "--parallel", str(parallel), "-c", str(ctx),
                    "-b", str(ctx), "--kv-tokens", str(kv_tokens), "--host", "127.0.0.1", "--port", "0", *extra]
        print("# " + " ".join(self.cmd), file=sys.stderr, flush=True)
        # its log (a line per request) goes to a file, shown when something fails
        self.log = tempfile.NamedTemporaryFile(prefix="serve_bench-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(self.cmd, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        line = [None]
        t = threading.Thread(target=lambda: line.__setitem__(0, self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(timeout=300)
        m = re.match(r"^trit serve: listening on http://([0-9.]+):([0-9]+)$", (line[0] or "").strip())
        if not m:
            self.proc.kill()
            fail("%s: no listening line (got %r)\n%s" % (" ".join(self.cmd), line[0], self.log_tail()))
        self.host, self.port = m.group(1), int(m.group(2))
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        # it listens before the model is loaded: /health answers 503 until then
        deadline = time.monotonic() + 600
        while True:
            try:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                conn.request("GET", "/health")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            finally:
                conn.close()
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.proc.kill()
                fail("%s: GET /health never answered 200\n%s" % (" ".join(self.cmd), self.log_tail()))
            time.sleep(0.2)

    def log_tail(self, n=3000):
        with open(self.log.name, errors="replace") as f:
            return "---- server log ----\n" + f.read()[-n:]

    def stop(self, show_log=False):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            fail("the server did not exit within 60 s of SIGTERM\n" + self.log_tail())
        if rc != 0:
            fail("the server exited %d after SIGTERM\n%s" % (rc, self.log_tail()))
        if show_log:
            print(self.log_tail(), file=sys.stderr)
        os.unlink(self.log.name)


def get_json(host, port, path, headers):
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            fail("GET %s: %d %s" % (path, r.status, body[:200]))
        return json.loads(body)
    finally:
        conn.close()


# ---- one streaming request ----------------------------------------------------------------------
def stream_request(host, port, headers, body, timeout):
    """Sends one streaming completion: (ttft_s, [itl_s ...], completion_tokens, end_s) or raises."""
    data = json.dumps(body).encode()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        t0 = time.perf_counter()
        conn.request("POST", "/v1/completions", body=data, headers=headers)
        r = conn.getresponse()
        if r.status != 200:
            raise RuntimeError("HTTP %d: %s" % (r.status, r.read()[:300]))
        ttft, last, itl, usage = None, None, [], None
        for raw in r:
            line = raw.strip()
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                break
            now = time.perf_counter()
            ev = json.loads(payload)
            if "error" in ev:
                raise RuntimeError("error event: %s" % ev["error"])
            if ev.get("usage"):
                usage = ev["usage"]
            n = 0
            for c in ev.get("choices") or []:
                ids = c.get("token_ids")
                n += len(ids) if ids is not None else (1 if c.get("text") else 0)
            if n == 0:
                continue
            if ttft is None:
                ttft = now - t0
            else:
                itl.extend([(now - last) / n] * n)
            last = now
        end = time.perf_counter()
        if usage is None:
            raise RuntimeError("the stream ended without a usage event")
        return ttft, itl, usage["completion_tokens"], usage["prompt_tokens"], end
    finally:
        conn.close()


def run_level(host, port, headers, bodies, concurrency, n_requests, max_tokens, timeout):
    """concurrency threads, each sending n_requests requests in turn: one CSV row (a dict)."""
    ttfts, itls, out_tokens, prompt_tokens, errors = [], [], [0], set(), []
    lock = threading.Lock()
    barrier = threading.Barrier(concurrency + 1)

    def client(i):
        barrier.wait()
        for k in range(n_requests):
            try:
                ttft, itl, n, p, _ = stream_request(host, port, headers, bodies[(i + k * concurrency) % len(bodies)],
                                                    timeout)
                if n != max_tokens:
                    raise RuntimeError("%d tokens instead of %d" % (n, max_tokens))
            except Exception as e:
                with lock:
                    errors.append(repr(e))
                continue
            with lock:
                ttfts.append(ttft)
                itls.extend(itl)
                out_tokens[0] += n
                prompt_tokens.add(p)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    done = len(ttfts)
    row = {
        "concurrency": concurrency, "requests": done, "prompt_tokens": "/".join(map(str, sorted(prompt_tokens))),
        "max_tokens": max_tokens, "wall_s": "%.3f" % wall, "req_per_s": "%.3f" % (done / wall),
        "out_tok_per_s": "%.2f" % (out_tokens[0] / wall),
        "ttft_p50_ms": "%.1f" % (1e3 * percentile(ttfts, 50)) if ttfts else "",
        "ttft_p99_ms": "%.1f" % (1e3 * percentile(ttfts, 99)) if ttfts else "",
        "itl_p50_ms": "%.2f" % (1e3 * percentile(itls, 50)) if itls else "",
        "itl_p99_ms": "%.2f" % (1e3 * percentile(itls, 99)) if itls else "",
        "failed": len(errors),
    }
    return row, errors


def make_bodies(model_id, synthetic, n_clients, prompt_tokens, max_tokens):
    """One request body per client: different prompts of the same size."""
    bodies = []
    words = TEXT.split()
    for i in range(n_clients):
        if synthetic:
            # ids 1..999 in a fixed pseudo-random walk, a different start per client
            prompt = [(i * 7919 + j * 104729) % 999 + 1 for j in range(prompt_tokens)]
        else:
            # about 1.3 tokens a word in this model's vocabulary; rotated so each client's differs
            k = (i * 7) % len(words)
            rot = words[k:] + words[:k]
            prompt = " ".join((rot * 4)[:max(1, int(prompt_tokens / 1.3))])
        bodies.append({"model": model_id, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                       "ignore_eos": True, "return_token_ids": True, "stream": True,
                       "stream_options": {"include_usage": True}})
    return bodies


# ---- output -------------------------------------------------------------------------------------
def markdown(rows):
    cols = ["model", "threads", "concurrency", "requests", "prompt_tokens", "max_tokens", "req_per_s", "out_tok_per_s",
            "ttft_p50_ms", "ttft_p99_ms", "itl_p50_ms", "itl_p99_ms"]
    names = ["model", "threads", "streams", "requests", "prompt tok", "max tokens", "req/s", "out tok/s",
             "TTFT p50 ms", "TTFT p99 ms", "ITL p50 ms", "ITL p99 ms"]
    out = ["| " + " | ".join(names) + " |", "| " + " | ".join("---" if i < 2 else "---:" for i in range(len(cols))) + " |"]
    for r in rows:
        out.append("| " + " | ".join(str(r[c]) for c in cols) + " |")
    return "\n".join(out)


def scaling_lines(rows):
    """Aggregate tok/s at each concurrency over one stream's, per model."""
    lines = []
    for model in dict.fromkeys(r["model"] for r in rows):
        rs = {int(r["concurrency"]): float(r["out_tok_per_s"]) for r in rows if r["model"] == model}
        if 1 in rs and rs[1] > 0:
            parts = ["%d streams %.2fx" % (c, v / rs[1]) for c, v in sorted(rs.items()) if c > 1]
            lines.append("- %s: aggregate output tok/s over one stream's: %s" % (model, ", ".join(parts)))
    return lines


def plot(rows, path, title):
    try:
        import matplotlib
    except ImportError:
        print("serve_bench.py: no matplotlib, no plot (bash tools/pyenv.sh --bench)", file=sys.stderr)
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(len(models), 2, figsize=(11, 3.6 * len(models)), squeeze=False)
    for row_axes, model in zip(axes, models):
        rs = sorted((r for r in rows if r["model"] == model), key=lambda r: int(r["concurrency"]))
        cs = [int(r["concurrency"]) for r in rs]
        tok = [float(r["out_tok_per_s"]) for r in rs]
        ax = row_axes[0]
        ax.plot(cs, tok, "o-", color="tab:blue", label="aggregate output tok/s")
        if cs[0] == 1:
            ax.plot(cs, [tok[0] * c for c in cs], "--", color="gray", label="linear from 1 stream")
        for c, v in zip(cs, tok):
            ax.annotate("%.0f" % v if v >= 100 else "%.1f" % v, (c, v), textcoords="offset points", xytext=(0, 6),
                        ha="center", fontsize=8)
        ax.set_ylabel("output tok/s (all streams)")
        ax.set_ylim(0, max(tok) * 1.25)
        ax.set_title("%s, %s thread(s): throughput" % (model, rs[0]["threads"]), fontsize=10)
        ax.legend(fontsize=8, loc="upper left")
        ax = row_axes[1]
        for key, style, label in (("itl_p50_ms", "o-", "ITL p50"), ("itl_p99_ms", "s--", "ITL p99"),
                                  ("ttft_p50_ms", "^:", "TTFT p50")):
            ax.plot(cs, [float(r[key]) for r in rs], style, label=label)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: "%g" % v))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: "%g" % v if str("%g" % v)[0] in "25" else ""))
        ax.set_ylabel("ms")
        ax.set_title("%s: latency per stream" % model, fontsize=10)
        ax.legend(fontsize=8, loc="upper left")
        for ax in row_axes:
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_locator(FixedLocator(cs))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: "%d" % v))
            ax.set_xlabel("concurrent streams")
            ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print("wrote " + path, file=sys.stderr)
    return True


def machine_name():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        m = re.search(r"^flags\s*:(.*)$", text, re.M)
        have = set(m.group(1).split()) if m else set()
        flags = "AVX-512" if "avx512f" in have else "AVX2" if "avx2" in have else platform.machine()
    except OSError:
        pass
    return "%s, %d logical CPUs, %s" % (cpu, os.cpu_count() or 0, flags)


def git_commit():
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or list(rows[0].keys()) != CSV_HEADER:
        fail("%s: not a serve_bench.py CSV" % path)
    return rows


# ---- main ---------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trit", default=os.path.join(REPO, "build", "trit"), help="the trit binary (default build/trit)")
    ap.add_argument("--url", help="a running server instead (http://HOST:PORT); -m is then its model id")
    ap.add_argument("-m", "--model", action="append", help="model (repeatable; default the shipped model)")
    ap.add_argument("-t", "--threads", type=int, default=2, help="server threads (default 2)")
    ap.add_argument("--concurrency", default="1,2,4,8,16", help="stream counts (default 1,2,4,8,16)")
    ap.add_argument("--requests", type=int, default=2, help="requests per client per level (default 2)")
    ap.add_argument("--max-tokens", type=int, default=64, help="output tokens per request (default 64)")
    ap.add_argument("--prompt-tokens", type=int, default=32, help="prompt size, about (default 32)")
    ap.add_argument("--api-key", help="the server's --api-key (with --url)")
    ap.add_argument("--server-arg", action="append", default=[], help="one more trit serve argument (repeatable)")
    ap.add_argument("--timeout", type=float, default=600, help="one request's bound in seconds (default 600)")
    ap.add_argument("-o", "--out", help="PREFIX: write PREFIX.csv, PREFIX.md, PREFIX.png")
    ap.add_argument("--machine", help="machine description for the .md and the plot (default from /proc/cpuinfo)")
    ap.add_argument("--plot", metavar="CSV", help="only plot this CSV to -o PREFIX.png")
    args = ap.parse_args()

    machine = args.machine or machine_name()
    date = datetime.date.today().isoformat()
    if args.plot:
        if not args.out:
            fail("--plot needs -o PREFIX")
        plot(read_csv(args.plot), args.out + ".png", "trit serve, %s, %s" % (machine, date))
        return 0

    levels = [int(c) for c in args.concurrency.split(",")]
    models = args.model or [os.path.join("models", "trit-kjv-4m.gguf")]
    headers = {"Content-Type": "application/json"}
    if args.api_key:
        headers["Authorization"] = "Bearer " + args.api_key
    load_start = loadavg()
    rows, server_cmds, all_errors = [], [], []
    t_start = time.time()
    for model in models:
        server = None
        if args.url:
            m = re.match(r"^http://([^:/]+):([0-9]+)/?$", args.url)
            if not m:
                fail("--url: expected http://HOST:PORT")
            host, port = m.group(1), int(m.group(2))
        else:
            ctx = -(-(args.prompt_tokens * 2 + args.max_tokens) // 64) * 64  # text prompts may run long
            server = Server(args.trit, model, args.threads, max(levels), ctx, ctx * max(levels), args.server_arg)
            server_cmds.append(" ".join(server.cmd[:1] + ["serve"] + server.cmd[2:]).replace(REPO + "/", ""))
            host, port = server.host, server.port
        try:
            model_id = get_json(host, port, "/v1/models", headers)["data"][0]["id"]
            bodies = make_bodies(model_id, model_id.startswith("synthetic:"), max(levels), args.prompt_tokens,
                                 args.max_tokens)
            stream_request(host, port, headers, bodies[0], args.timeout)  # warm-up
            for c in levels:
                row, errors = run_level(host, port, headers, bodies, c, args.requests, args.max_tokens, args.timeout)
                row = {"model": model_id, "threads": args.threads, **row}
                rows.append(row)
                all_errors += ["%s, %d streams: %s" % (model_id, c, e) for e in errors]
                print("# %s: %d streams: %s out tok/s, ITL p50 %s ms%s" % (
                    model_id, c, row["out_tok_per_s"], row["itl_p50_ms"],
                    ", %d FAILED" % len(errors) if errors else ""), file=sys.stderr, flush=True)
        finally:
            if server:
                server.stop(show_log=bool(all_errors))
    elapsed = time.time() - t_start
    load_end = loadavg()

    table = markdown(rows)
    print(table)
    for line in scaling_lines(rows):
        print(line)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out + ".csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_HEADER)
            w.writeheader()
            w.writerows(rows)
        own_cmd = " ".join(["bench/serve_bench.py"] + [a.replace(REPO + "/", "") for a in sys.argv[1:]])
        md = ["<!-- written by bench/serve_bench.py -->",
              "# trit serve: concurrent streaming clients, %s" % date, "",
              "- machine: %s" % machine,
              "- commit: %s" % git_commit(),
              "- date: %s UTC; %.0f s in all" % (datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"), elapsed),
              "- load average (1/5/15 min): %s at start, %s at end" % (load_start, load_end),
              "- command: `%s`" % own_cmd]
        for cmd in server_cmds:
            md.append("- server: `%s`" % cmd)
        md += ["- work: each of C clients sends %d streaming /v1/completions requests in turn (closed loop), "
               "%d output tokens each with ignore_eos, temperature 0; one warm-up request per model first"
               % (args.requests, args.max_tokens), "",
               table, ""]
        md += scaling_lines(rows)
        md += ["", "req/s and out tok/s: completed requests and their output tokens over the level's wall time; "
               "TTFT: request sent to the first token event; ITL: time between a stream's token events per token "
               "(p50/p99 nearest-rank over all requests or gaps of the level). Measured by the client on loopback.",
               ""]
        if all_errors:
            md += ["Failed requests:", ""] + ["- " + e for e in all_errors] + [""]
        with open(args.out + ".md", "w") as f:
            f.write("\n".join(md))
        print("wrote %s.csv, %s.md" % (args.out, args.out), file=sys.stderr)
        plot(rows, args.out + ".png", "trit serve, %s, %s" % (machine, date))
    if all_errors:
        for e in all_errors[:20]:
            print("FAILED: " + e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
