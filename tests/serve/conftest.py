"""conftest.py: the harness of the `trit serve` tests (tests/serve, ctest label `serve`).

    TRIT_BIN=build/trit .venv/bin/python -m pytest -x -q tests/serve      (from the repository root)
    ctest --test-dir build -L serve --output-on-failure                   (the same, through ctest)

Every test talks to a server that the tests start themselves: `trit serve --host 127.0.0.1 --port 0`,
whose one stdout line `trit serve: listening on http://HOST:PORT` gives the port. TritServer reads
that line, waits for GET /health, and always stops the process (SIGTERM, then SIGKILL past the
bound); its stderr is kept in a file and shown when a test fails. Nothing leaves the loopback
interface, and every wait has a bound, so a hung server fails a test instead of hanging CI.

The clients are the official `openai` package (tools/pyenv.sh installs it, pinned, into .venv) with
retries off; raw HTTP (http.client) only where the client cannot say it: bodies the client would
never send, methods, headers, /health and /metrics.
"""
import http.client
import json
import os
import queue
import re
import signal
import subprocess
import tempfile
import threading
import time

import openai
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MODEL_FILE = os.path.join(REPO, "models", "trit-kjv-4m.gguf")
# the id /v1/models gives the shipped model, and requests must name: the model path's basename
DEFAULT_MODEL_ID = os.path.basename(DEFAULT_MODEL_FILE)

START_TIMEOUT_S = 60  # a model load plus the listening line (the default model loads in ~0.1 s)
STOP_TIMEOUT_S = 20  # SIGTERM to exit, past --shutdown-timeout (servers here use 5 s)
REQUEST_TIMEOUT_S = 60  # one request, start to end (a whole test's requests take a few seconds)

LISTEN_RE = re.compile(r"^trit serve: listening on http://([0-9.]+|\[[0-9a-fA-F:]+\]):([0-9]+)$")


def trit_bin():
    path = os.environ.get("TRIT_BIN")
    if not path:
        pytest.fail("TRIT_BIN is not set: run these tests through ctest (-L serve), or as "
                    "TRIT_BIN=build/trit .venv/bin/python -m pytest tests/serve", pytrace=False)
    if not os.access(path, os.X_OK):
        pytest.fail("TRIT_BIN=%s is not an executable" % path, pytrace=False)
    return path


class TritServer:
    """One `trit serve` process on 127.0.0.1 and a free port. start() returns when /health answers."""

    def __init__(self, args, name="serve", prefix=()):
        self.args = list(args)
        self.name = name
        self.prefix = list(prefix)  # a launcher: ["mpirun", "-n", "2", ...] (test_tp_mpi.py)
        self.proc = None
        self.host = self.port = None
        self.stdout_lines = []
        self._lines = queue.Queue()
        self._err = tempfile.NamedTemporaryFile(prefix="trit-%s-" % name, suffix=".stderr", delete=False)

    # ---- process -------------------------------------------------------------------------------
    def start(self):
        cmd = [*self.prefix, trit_bin(), "serve", *self.args, "--host", "127.0.0.1", "--port", "0"]
        env = dict(os.environ)
        env.pop("TRIT_MODEL", None)  # no -m means the shipped model, whatever the caller's shell says
        env.pop("TRIT_API_KEY", None)  # a key only where a test gives --api-key
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._err, text=True, bufsize=1)
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT_S
        first = None
        while first is None:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise AssertionError("%s: no listening line within %d s\n%s" % (self.cmd_text(), START_TIMEOUT_S,
                                                                                 self.stderr_text()))
            try:
                first = self._lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None:
                    raise AssertionError("%s exited %d before listening\n%s" % (self.cmd_text(), self.proc.returncode,
                                                                               self.stderr_text()))
        if first is EOFError:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
            raise AssertionError("%s closed stdout (exit %s) before listening\n%s" % (
                self.cmd_text(), self.proc.returncode, self.stderr_text()))
        m = LISTEN_RE.match(first.rstrip("\n"))
        if not m:
            self.kill()
            raise AssertionError("%s: first stdout line %r is not 'trit serve: listening on http://HOST:PORT'\n%s"
                                 % (self.cmd_text(), first, self.stderr_text()))
        self.host, self.port = m.group(1).strip("[]"), int(m.group(2))
        assert self.host == "127.0.0.1", first
        assert 0 < self.port < 65536, first
        while True:
            try:
                status, _, _ = self.request("GET", "/health", timeout=5)
                if status == 200:
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.kill()
                raise AssertionError("%s: GET /health never answered 200\n%s" % (self.cmd_text(), self.stderr_text()))
            time.sleep(0.05)

    def _drain(self):
        for line in self.proc.stdout:
            self.stdout_lines.append(line)
            self._lines.put(line)
        self._lines.put(EOFError)

    def ranks(self):
        """With a launcher: the pids of the trit processes it started (its children), else [pid]."""
        if not self.prefix:
            return [self.proc.pid]
        pids = []
        for d in os.listdir("/proc"):
            try:
                with open("/proc/%s/stat" % d) as f:
                    stat = f.read()
            except (OSError, ValueError):
                continue
            name_end = stat.rfind(")")
            fields = stat[name_end + 2:].split()
            if stat[stat.find("(") + 1:name_end] == "trit" and int(fields[1]) == self.proc.pid:
                pids.append(int(d))
        return pids

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM (to the ranks, not to a launcher: mpirun would kill them at once), then the exit
        status; SIGKILL and an AssertionError past `timeout` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        for pid in self.ranks():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("%s did not exit within %d s of SIGTERM\n%s" % (self.cmd_text(), timeout,
                                                                                self.stderr_text()))

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            for pid in self.ranks() if self.prefix else []:  # a killed launcher would leave them behind
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    def close(self):
        """Stops the server (the fixtures' finalizer): a non-zero exit after SIGTERM fails the test."""
        try:
            rc = self.stop()
        finally:
            self.kill()
            os.unlink(self._err.name)
        return rc

    def cmd_text(self):
        return " ".join(self.cmd)

    def stderr_text(self, tail=6000):
        self._err.flush()
        with open(self._err.name, errors="replace") as f:
            text = f.read()
        return "---- server stderr (last %d chars) ----\n%s" % (tail, text[-tail:])

    # ---- HTTP ----------------------------------------------------------------------------------
    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def client(self, api_key="unused", timeout=REQUEST_TIMEOUT_S, cls=openai.OpenAI):
        return cls(base_url=self.url + "/v1", api_key=api_key, max_retries=0, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=REQUEST_TIMEOUT_S):
        """One request on a new connection: (status, headers as a lower-case dict, body bytes)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            hdrs = dict(headers or {})
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                hdrs.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def metrics(self):
        """GET /metrics as {name or name{labels}: float} (Prometheus text format, comments skipped)."""
        status, _, body = self.request("GET", "/metrics", timeout=10)
        assert status == 200, body
        out = {}
        for line in body.decode().splitlines():
            if not line or line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            out[key.strip()] = float(value)
        return out

    def wait_metrics(self, pred, timeout=10.0):
        """Polls /metrics until pred(metrics) holds; returns the last metrics either way."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.metrics()
            if pred(m) or time.monotonic() > deadline:
                return m
            time.sleep(0.05)

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS in /proc/%d/status" % self.proc.pid)

    def n_fds(self):
        return len(os.listdir("/proc/%d/fd" % self.proc.pid))

    def model_id(self):
        return self.client().models.list().data[0].id


def start_server(request, args, name, prefix=()):
    """A started TritServer that is stopped when the requesting fixture or test ends; its stderr is
    printed when the test failed, so a failure shows what the server said."""
    srv = TritServer(args, name, prefix)
    srv.start()

    def fin():
        text = srv.stderr_text()
        rc = srv.close()
        if rc not in (0, None):
            print(text)
            raise AssertionError("%s exited %s after SIGTERM (expected 0)" % (srv.cmd_text(), rc))

    request.addfinalizer(fin)
    return srv


# ---- fixtures ----------------------------------------------------------------------------------
# One server with the shipped model serves every test that does not need its own flags.
DEFAULT_ARGS = ["-t", "1", "--parallel", "4", "--shutdown-timeout", "5"]


@pytest.fixture(scope="session")
def server(request):
    return start_server(request, DEFAULT_ARGS, "default")


@pytest.fixture(scope="session")
def client(server):
    return server.client()


@pytest.fixture(scope="session")
def model_id(server):
    return server.model_id()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, attach the default server's stderr tail to the report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and "server" in getattr(item, "funcargs", {}):
        rep.sections.append(("trit serve stderr", item.funcargs["server"].stderr_text(3000)))
