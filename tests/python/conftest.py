"""conftest.py: the harness of the Python package's tests (tests/python, ctest entry `python`).

    ctest --test-dir build -L python --output-on-failure          (from the repository root)
    TRIT_LIBRARY=build/libtrit.so TRIT_BIN=build/trit PYTHONPATH=python \\
        .venv/bin/python -m pytest -q tests/python                  (the same by hand)

The package is imported from python/ and binds the build tree's libtrit.so ($TRIT_LIBRARY): no pip
build is needed (.ci/run checks `pip install .` separately). Results are compared with the trit
command of the same build ($TRIT_BIN), run on the same model: the CLI is the reference the binding
must reproduce bit for bit.
"""
import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MODEL = os.path.join(REPO, "models", "trit-kjv-4m.gguf")
CLI_TIMEOUT_S = 60  # one CLI run on the shipped model takes well under a second


def _need(var):
    v = os.environ.get(var)
    if not v:
        pytest.fail("%s is not set: run these tests through ctest (-L python), or as TRIT_LIBRARY=build/libtrit.so "
                    "TRIT_BIN=build/trit PYTHONPATH=python .venv/bin/python -m pytest tests/python" % var,
                    pytrace=False)
    return v


@pytest.fixture(scope="session")
def trit_bin():
    path = _need("TRIT_BIN")
    if not os.access(path, os.X_OK):
        pytest.fail("TRIT_BIN=%s is not an executable" % path, pytrace=False)
    return path


@pytest.fixture(scope="session")
def cli(trit_bin):
    """cli(*args, input=None) -> stdout as bytes; a non-zero exit fails the test with its stderr."""

    def run(*args, input=None):
        p = subprocess.run([trit_bin] + list(args), input=input, capture_output=True, timeout=CLI_TIMEOUT_S, cwd=REPO)
        if p.returncode != 0:
            pytest.fail("trit %s exited %d:\n%s" % (" ".join(args), p.returncode, p.stderr.decode(errors="replace")))
        return p.stdout

    return run


@pytest.fixture(scope="session")
def trit_module():
    _need("TRIT_LIBRARY")
    import trit

    assert os.path.samefile(trit._lib.path, os.environ["TRIT_LIBRARY"]), "the package bound another libtrit.so"
    return trit


@pytest.fixture(scope="module")
def model(trit_module):
    """The shipped model, loaded once per test file."""
    with trit_module.Model(DEFAULT_MODEL) as m:
        yield m
