"""test_api.py: the package's surface: the default model, model.info, the constructor's options as
the context reports them, and the module functions.
"""
import os

from conftest import DEFAULT_MODEL


def test_default_model_is_the_shipped_one(trit_module, monkeypatch):
    monkeypatch.delenv("TRIT_MODEL", raising=False)
    with trit_module.Model() as m:
        assert os.path.samefile(m.path, DEFAULT_MODEL)
        assert m.generate("In the beginning", max_tokens=16, temperature=0) == \
            " of the earth, and the LORD hath spoken unto me, and the LORD God"


def test_default_model_from_environment(trit_module, monkeypatch):
    monkeypatch.setenv("TRIT_MODEL", "synthetic:tiny")  # as the CLI reads it
    with trit_module.Model() as m:
        assert m.path == "synthetic:tiny"


def test_info(model):
    info = model.info
    assert info["architecture"] == "bitnet-b1.58"
    assert (info["n_layers"], info["dim"], info["n_heads"], info["n_kv_heads"], info["head_dim"], info["ffn_dim"]) == \
        (4, 256, 4, 2, 64, 768)
    assert info["n_vocab"] == model.n_vocab == 4096
    assert info["n_ctx_train"] == info["n_ctx"] == model.n_ctx == 256
    assert info["head_dtype"] == "bf16" and info["head"] == "model"
    assert info["backend"] in ("cpu", "cuda")
    if info["backend"] == "cpu":
        assert info["device"].startswith("CPU " + info["kernel_family"] + ",")
        assert info["kernel_family"] in ("scalar", "avx2", "avx512-vnni", "amx", "neon", "neon_dotprod")
    assert info["memory_bytes"] > 0 and info["ternary_params"] > 0
    assert os.path.isfile(info["library"])


def test_options_reach_the_context(trit_module):
    with trit_module.Model(DEFAULT_MODEL, device="cpu", threads=1, n_ctx=64, head="int8") as m:
        assert m.info["backend"] == "cpu" and m.n_ctx == 64
        assert ", 1 thread," in m.info["device"] + "," and "int8 head" in m.info["device"]
        assert m.generate("In the beginning", max_tokens=4, temperature=0)


def test_numpy_scalars(model):
    """numpy's integers and floats are taken where Python's are."""
    import numpy as np

    a = model.generate("In the beginning", max_tokens=np.int64(8), temperature=np.float32(0), top_k=np.int32(5))
    assert a == model.generate("In the beginning", max_tokens=8, temperature=0, top_k=5)
    assert model.token_text(np.int64(4093)) == model.token_text(4093)


def test_module_functions(trit_module):
    assert trit_module.version() == trit_module.__version__
    assert trit_module.version().count(".") == 2
    assert trit_module.cuda_device_count() >= 0
    assert isinstance(trit_module.cuda_compiled(), bool)
    e = trit_module.TritError("message", trit_module.Status.IO)
    assert e.message == "message" and e.status == trit_module.Status.IO and "io" in str(e)
