"""test_tp_mpi.py: `trit serve --tp-mpi` under mpirun (2 CPU ranks; ctest entry serve_tp_mpi, label
serve and mpi, only in builds with MPI, which set TRIT_MPIEXEC).

  - rank 0 listens and leads, rank 1 follows: every request's text (greedy, seeded, n = 2, chat,
    streamed, several at once) equals what the same server on one rank gives for it alone (exact
    mode's logits on N ranks are those of one rank, bit for bit: docs/tensor-parallel.md; against the
    one-process CPU backend they may differ in the last bits for a graph with sub-norms, such as the
    shipped model's)
  - a follower waiting for requests uses no CPU
  - embeddings (CPU backend, one process) are refused with 400 and the library's message, on two
    ranks and on one, and generation goes on
  - SIGTERM to the ranks (as `pkill -TERM -f "trit serve"` sends) during streams: rank 0 drains,
    tells rank 1 to stop, and mpirun exits 0 with no process left

    TRIT_BIN=build/trit TRIT_MPIEXEC=mpirun .venv/bin/python -m pytest -q tests/serve/test_tp_mpi.py
"""
import json
import os
import threading
import time

import pytest

from conftest import start_server
from test_load import make_requests, run_alone, run_round

SERVE_ARGS = ["-t", "1", "--parallel", "4", "--chunk", "16", "--shutdown-timeout", "5"]


def launcher(np):
    mpiexec = os.environ.get("TRIT_MPIEXEC")
    if not mpiexec:
        pytest.fail("TRIT_MPIEXEC is not set: run through ctest (-R serve_tp_mpi) in a build with MPI", pytrace=False)
    pre = [mpiexec, "-n", str(np)]
    pre += os.environ.get("TRIT_MPIEXEC_PREFLAGS", "").split()
    return pre


@pytest.fixture(scope="module")
def tp_server(request):
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    return start_server(request, SERVE_ARGS + ["--tp-mpi"], "tp-mpi", prefix=launcher(2))


@pytest.fixture(scope="module")
def one_server(request):
    """The same server on one rank."""
    return start_server(request, SERVE_ARGS + ["--tp-mpi"], "one-rank", prefix=launcher(1))


def test_two_ranks(tp_server):
    assert len(tp_server.ranks()) == 2, "mpirun should run two trit processes"


def test_requests_equal_one_process(tp_server, one_server):
    tp, one = tp_server.client(), one_server.client()
    model = tp_server.model_id()
    for kw in (dict(prompt="In the beginning", max_tokens=24, temperature=0),
               dict(prompt="And God said", max_tokens=24, temperature=0.9, seed=7),
               dict(prompt=[1, 17, 300, 42], max_tokens=12, temperature=0.8, seed=3, n=2)):
        a = [c.text for c in tp.completions.create(model=model, **kw).choices]
        b = [c.text for c in one.completions.create(model=model, **kw).choices]
        assert a == b, "%r: two ranks %r, one rank %r" % (kw, a, b)
    msgs = [{"role": "user", "content": "Who made the heaven?"}]
    a = tp.chat.completions.create(model=model, messages=msgs, max_completion_tokens=20, seed=5)
    b = one.chat.completions.create(model=model, messages=msgs, max_completion_tokens=20, seed=5)
    assert a.choices[0].message.content == b.choices[0].message.content


def test_concurrent_streams_equal_one_process(tp_server, one_server):
    """Six streams at once over the two ranks (batched with each other, prompts in chunks of 16),
    against each alone on one rank."""
    reqs = make_requests(tp_server.model_id())[:6]
    want = [run_alone(one_server.client(), r) for r in reqs]
    for i, (res, w) in enumerate(zip(run_round(tp_server, reqs), want)):
        assert not isinstance(res, Exception), "request %d: %r" % (i, res)
        assert res[0] == w, "request %d: two ranks, six at once\n%r\none rank, alone\n%r" % (i, res[0], w)


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_idle_follower_sleeps(tp_server):
    """Between requests the follower waits for rank 0 without spinning: under 10% of a core."""
    pids = tp_server.ranks()
    t0 = [cpu_ticks(p) for p in pids]
    time.sleep(2.0)
    used = [(cpu_ticks(p) - a) / os.sysconf("SC_CLK_TCK") for p, a in zip(pids, t0)]
    assert all(u < 0.2 for u in used), "CPU seconds over 2 idle seconds, per rank: %s" % used


def alive(pid):
    """Running (a zombie that its parent has not reaped yet is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_sigterm_during_streams(request):
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    srv = start_server(request, SERVE_ARGS + ["--tp-mpi"], "tp-mpi-sigterm", prefix=launcher(2))
    pids = srv.ranks()
    reqs = make_requests(srv.model_id())[:4]
    client = srv.client(timeout=60)
    results = [None] * len(reqs)
    began = threading.Semaphore(0)

    def one(i):
        try:
            kind, kw, _ = reqs[i]
            assert kind in ("text", "chat")
            create = client.chat.completions.create if kind == "chat" else client.completions.create
            n = 0
            for _ in create(stream=True, **kw):
                n += 1
                if n == 2:
                    began.release()
            results[i] = n
        except Exception as e:  # the drain should let every stream finish
            results[i] = e
            began.release()

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(reqs))]
    for t in threads:
        t.start()
    for _ in reqs:
        assert began.acquire(timeout=30)
    rc = srv.stop(timeout=20)
    for t in threads:
        t.join(timeout=30)
    assert rc == 0, "mpirun exited %s after SIGTERM to its ranks\n%s" % (rc, srv.stderr_text())
    assert all(isinstance(r, int) and r > 2 for r in results), results
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids), "ranks %s still running after mpirun exited" % pids
    err = srv.stderr_text()
    assert err.count("trit serve: stopped") == 1 and "[rank 1]" not in err, err  # rank 0 speaks; rank 1 is quiet


def test_embeddings_refused(tp_server, one_server):
    """Embeddings run on the CPU backend in one process: under --tp-mpi (two ranks or one) the
    library refuses them, and the server answers 400 with its message; generation goes on."""
    for srv in (tp_server, one_server):
        status, _, data = srv.request("POST", "/v1/embeddings", {"input": "In the beginning"})
        assert status == 400, data
        err = json.loads(data)["error"]
        assert err["type"] == "invalid_request_error" and "trit_embed" in err["message"], err
        r = srv.client().completions.create(model=srv.model_id(), prompt="In the beginning", max_tokens=4,
                                            temperature=0)
        assert r.choices[0].text
