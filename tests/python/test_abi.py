"""test_abi.py: the ctypes structs of python/trit/_lib.py have the C layout of include/trit.h: the
same size, and every field at the same offset with the same size. A field added to a C struct and not to its mirror fails here, before a call passes a
struct of the wrong size.

The C side is a small program compiled with the system's C compiler ($CC, else cc: the one that
built the library) that prints sizeof and offsetof of each field.
"""
import ctypes
import os
import shutil
import subprocess

import pytest

from conftest import REPO

# struct name in C -> (ctypes class name in _lib, the C fields in order)
STRUCTS = {
    "trit_model_params": ("ModelParams", ["progress", "progress_user", "i2s_layout"]),
    "trit_context_params": ("ContextParams", ["n_ctx", "n_batch", "n_threads", "device", "logits_all", "head_int8",
                                              "head_q4", "tp_size", "tp_mpi", "tp_quant", "mem_limit", "cuda_gemv",
                                              "n_seq_max", "n_kv"]),
    "trit_sampler_params": ("SamplerParams", ["temperature", "top_k", "top_p", "min_p", "repeat_penalty",
                                              "repeat_last_n", "seed"]),
    "trit_tokens": ("Tokens", ["ids", "n", "cap"]),
    "trit_tok_stream": ("TokStream", ["tok", "flags", "strip_space", "n_pending", "pending"]),
    "trit_batch": ("Batch", ["n_tokens", "token", "pos", "seq_id", "logits"]),
    "trit_kv_stats": ("KvStats", ["block_tokens", "n_blocks", "n_free"]),
    "trit_model_shape": ("ModelShape", ["architecture", "n_layers", "dim", "n_heads", "n_kv_heads", "head_dim",
                                        "ffn_dim", "n_vocab", "n_ctx_train", "n_ternary_params"]),
    "trit_perplexity_result": ("PerplexityResult", ["ppl", "ppl_err", "mean_nll", "n_chunks", "n_scored"]),
    "trit_chat_message": ("ChatMessage", ["role", "content"]),
    "trit_chat_vars": ("ChatVars", ["messages", "n_messages", "bos_token", "eos_token", "add_generation_prompt"]),
}


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory):
    cc = os.environ.get("CC") or "cc"
    if not shutil.which(cc):
        pytest.fail("no C compiler (%s) to check the struct layouts with: the build that made libtrit had one" % cc)
    lines = ["#include <stddef.h>", "#include <stdio.h>", '#include "trit.h"',
             "int main(void) {"]
    for name, (_, fields) in STRUCTS.items():
        lines.append('    printf("%s %%zu\\n", sizeof(struct %s));' % (name, name))
        for f in fields:
            lines.append('    printf("%s.%s %%zu %%zu\\n", offsetof(struct %s, %s), sizeof(((struct %s *)0)->%s));'
                         % (name, f, name, f, name, f))
    lines += ["    return 0;", "}"]
    d = tmp_path_factory.mktemp("abi")
    src, exe = d / "layout.c", d / "layout"
    src.write_text("\n".join(lines) + "\n")
    subprocess.run([cc, "-std=c11", "-I", os.path.join(REPO, "include"), "-I", os.path.join(REPO, "host"),
                    str(src), "-o", str(exe)], check=True, timeout=60)
    out = {}
    for line in subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.splitlines():
        key, *nums = line.split()
        out[key] = tuple(int(n) for n in nums) if "." in key else int(nums[0])
    return out


@pytest.mark.parametrize("c_name", sorted(STRUCTS))
def test_struct_layout(trit_module, c_layout, c_name):
    py_name, fields = STRUCTS[c_name]
    cls = getattr(trit_module._lib, py_name)
    assert [f[0] for f in cls._fields_] == fields
    assert ctypes.sizeof(cls) == c_layout[c_name], "sizeof(struct %s)" % c_name
    for f in fields:
        d = getattr(cls, f)
        assert (d.offset, d.size) == c_layout["%s.%s" % (c_name, f)], "struct %s field %s" % (c_name, f)
