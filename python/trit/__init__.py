"""trit: ternary-weight (BitNet b1.58) inference from Python, over libtrit.so (include/trit.h).

    import trit
    with trit.Model() as m:                                  # the shipped model, trit-kjv-4m
        print(m.generate("In the beginning", max_tokens=16, temperature=0))
        logits = m.logits(m.tokenize("In the beginning"))    # numpy float32 (n_tokens, n_vocab)

docs/python.md describes every method; errors are TritError with the library's message and status.
"""
from . import _lib
from ._lib import Status, TritError
from ._model import Model

__all__ = ["Model", "TritError", "Status", "version", "cuda_device_count", "cuda_compiled", "set_log_level"]
__version__ = _lib.lib.trit_version().decode()


def version():
    """The library's version string, e.g. "0.1.0"."""
    return _lib.lib.trit_version().decode()


def cuda_device_count():
    """CUDA devices visible to this process; 0 without any, or in a build without CUDA."""
    return _lib.lib.trit_cuda_device_count()


def cuda_compiled():
    """Whether this libtrit was built with the CUDA backend."""
    return bool(_lib.lib.trit_cuda_compiled())


def set_log_level(level):
    """The library's log lines at or above `level` ("debug", "info", "warn", "error") go to stderr.
    The package sets "warn" at import: the CLI's info lines (the device that auto chose) would
    otherwise print on every Model()."""
    if level not in _lib.LOG_LEVEL:
        raise ValueError("level must be one of debug, info, warn, error (got %r)" % (level,))
    _lib.lib.trit_log_set_level(_lib.LOG_LEVEL[level])


set_log_level("warn")
