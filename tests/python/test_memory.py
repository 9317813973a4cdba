"""test_memory.py: objects free their memory, deterministically (close, with) and on garbage
collection, so that creating and freeing them in a loop leaves the process's memory flat.

RSS (VmRSS in /proc/self/status) is read after warm-up cycles, which let glibc's heap and Python's
allocator reach their working size, and again after the loop. The bound, RSS_BOUND_KIB = 4 MiB,
comes from what the loops would leak: a Model of the shipped model holds about 3.4 MiB of RSS (its
context alone about 1.5 MiB) and a sampler of its 4096-token vocabulary about 50 KiB, so the bound
is passed by Models leaked in 2 cycles of the 1000, by 4 KiB leaked per cycle, by 3 leaked contexts
or by the samplers of the 200 streams (the last two checked by leaking on purpose: 150 MiB for 100
contexts, 4.9 MiB for 100 samplers). Measured here on 2 cores: 0 KiB of growth over 1000 cycles.
"""
import gc

from conftest import DEFAULT_MODEL

RSS_BOUND_KIB = 4096
CYCLES = 1000  # about 27 s on 2 cores: a load of the shipped model is ~21 ms, its context ~7 ms
WARMUP = 50


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS line in /proc/self/status")


def test_create_free_cycles_leave_memory_flat(trit_module):
    for _ in range(WARMUP):
        with trit_module.Model(DEFAULT_MODEL):
            pass
    before = rss_kib()
    for _ in range(CYCLES):
        with trit_module.Model(DEFAULT_MODEL) as m:
            pass
    after = rss_kib()
    assert m.closed
    assert after - before <= RSS_BOUND_KIB, "RSS grew by %d KiB over %d create/free cycles" % (after - before, CYCLES)


def test_garbage_collection_frees(trit_module):
    """Models dropped without close() are freed by their finalizer: at once when the last reference
    goes (CPython's reference counting), and by the cycle collector when a Model is in a cycle."""
    for _ in range(10):
        trit_module.Model(DEFAULT_MODEL)
    before = rss_kib()
    for _ in range(50):
        m = trit_module.Model(DEFAULT_MODEL)
        m.tokenize("In the beginning")
        del m
    assert rss_kib() - before <= RSS_BOUND_KIB
    m = trit_module.Model(DEFAULT_MODEL)
    handles = m._h  # the C objects, held apart from the Model so that its finalizer can free them
    m.self_cycle = m
    del m
    assert handles.model is not None  # only the cycle collector can free it
    gc.collect()
    assert handles.model is None and handles.tok is None and handles.ctx is None


def test_streams_and_contexts_free(trit_module, model):
    """Streams left half-read and dropped free their samplers (200 of them: a leaked sampler is about
    50 KiB of RSS, so leaking every one would be 10 MiB); switching between generation, logits, perplexity and batches frees each
    context it replaces (a context of the shipped model holds 1.8 MiB: 3 leaked pass the bound)."""
    text = "In the beginning God created the heaven and the earth. " * 40

    def streams(n):
        for _ in range(n):
            s = model.stream("In the beginning", max_tokens=8)
            next(s)
            del s

    def switches(n):
        for _ in range(n):
            model.logits([1, 2, 3])
            model.generate_batch(["a", "b"], max_tokens=2)
            model.perplexity(text, n_ctx=64, max_chunks=1)
            model.generate("a", max_tokens=1)

    streams(20)
    switches(5)
    gc.collect()
    before = rss_kib()
    streams(200)
    switches(25)
    gc.collect()
    assert rss_kib() - before <= RSS_BOUND_KIB
