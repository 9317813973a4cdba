#!/usr/bin/env python3
"""tokenize_json_check.py: hostile-input checks of `trit tokenize` output, with Python's strict
JSON parser (the one a user of --pieces or --jsonl would read it with).

    python3 tests/tokenize_json_check.py build/trit tests/data models/trit-kjv-4m.gguf

Run by tests/ctest_tokenize_json.cmake (ctest -R tokenize_json). Checks:
  pieces     --pieces on four vocabularies (byte-level BPE: the shipped model, Llama 3's
             tokenizer.json and the Qwen2-style qwen2-tiny with its NFC normalizer; SentencePiece
             with byte fallback: ggml-vocab-llama-spm.gguf) for a text
             of multi-byte characters, an emoji split across byte tokens, control characters, a
             quote, a backslash and DEL: stdout is UTF-8, every line is id TAB json-string [TAB
             json-array-of-bytes], json.loads (strict) reads each, the third field is there exactly
             when the bytes are not UTF-8 and the string is then bytes.decode('utf-8', 'replace'),
             and the bytes of all pieces are the text (SPM: after its one prefix space);
  nul        --jsonl with "\\u0000" in "text": the text is written back unchanged and its ids decode
             (through tokenizer.json's vocabulary and the GPT-2 byte map) to the bytes, NUL included;
             SPM gives <0x00> (id 3);
  random     300 seeded --jsonl objects with "text" among nested values, look-alike keys, escapes
             and spacing: each "text" comes back as json.dumps wrote it, with ids when not empty;
  full       stdout on /dev/full: exit 1 with "cannot write to stdout", stopping at the first record
             (the bad line at the end of the input is never reached).
"""
import json
import os
import random
import subprocess
import sys

TRIT, DATA, MODEL = sys.argv[1], sys.argv[2], sys.argv[3]
LLAMA3 = os.path.join(DATA, "tokenizers", "llama3")
QWEN2 = os.path.join(DATA, "tokenizers", "qwen2-tiny")
SPM = os.path.join(DATA, "tokenizers", "llama-spm", "ggml-vocab-llama-spm.gguf")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def trit(args, stdin=None, stdout=subprocess.PIPE):
    return subprocess.run([TRIT, "tokenize"] + args, input=stdin, stdout=stdout, stderr=subprocess.PIPE)


def gpt2_byte_decoder():
    """GPT-2's bytes_to_unicode, inverted: vocabulary character -> byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


# ---- --pieces: valid JSON in valid UTF-8, and the bytes round-trip ------------------------------
TEXT = "h\u00e9llo w\u00f6rld \U0001F600 \U0001FAE0 \u65e5\u672c a\x01b\tc\x1f\"q\\\x7f end\n"
for model, prefix in ((MODEL, b""), (LLAMA3, b""), (QWEN2, b""), (SPM, b" ")):
    name = os.path.basename(model)
    r = trit(["-m", model, "-p", TEXT, "--pieces"])
    ids = trit(["-m", model, "-p", TEXT])
    check(r.returncode == 0 and ids.returncode == 0, f"{name}: exit {r.returncode} {r.stderr!r}")
    try:
        out = r.stdout.decode("utf-8")  # strict: any invalid byte raises
    except UnicodeDecodeError as e:
        check(False, f"{name}: stdout is not UTF-8: {e}")
        continue
    got, n_bytes_field, want_ids = b"", 0, [int(x) for x in ids.stdout.split()]
    lines = out.split("\n")
    check(lines[-1] == "", f"{name}: output does not end with a newline")
    lines = lines[:-1]
    check([int(l.split("\t")[0]) for l in lines] == want_ids, f"{name}: --pieces ids differ from the plain ids")
    for line in lines:
        f = line.split("\t")
        check(len(f) in (2, 3), f"{name}: {len(f)} fields in {line!r}")
        try:
            s = json.loads(f[1])  # strict=True: a raw control character is an error
        except ValueError as e:
            check(False, f"{name}: not a JSON string: {f[1]!r}: {e}")
            continue
        check(isinstance(s, str), f"{name}: {f[1]!r} is not a string")
        if len(f) == 3:
            n_bytes_field += 1
            b = bytes(json.loads(f[2]))
            try:
                b.decode("utf-8")
                check(False, f"{name}: {line!r} has a bytes field but its bytes are UTF-8")
            except UnicodeDecodeError:
                pass
            check(s == b.decode("utf-8", "replace"), f"{name}: {line!r}: the string is not the replacement decoding")
        else:
            b = s.encode("utf-8")
        got += b
    check(got == prefix + TEXT.encode("utf-8"), f"{name}: the pieces' bytes are {got!r}")
    check(n_bytes_field > 0, f"{name}: no piece needed its bytes (the emoji should be split)")
    check('"\\u0001"' in out or "\\u0001" in out, f"{name}: \\x01 is not escaped as \\u0001")

# ---- --jsonl: \u0000 is the byte 0 ---------------------------------------------------------------
vocab = json.load(open(os.path.join(LLAMA3, "tokenizer.json"), encoding="utf-8"))["model"]["vocab"]
inv = {i: t for t, i in vocab.items()}
dec = gpt2_byte_decoder()
src = b'{"text":"\\u0000x"}\n{"text":"a\\u0000b","k":[1,{"text":"no"}]}\n{"text":"\\u0000"}\n'
for model in (MODEL, LLAMA3, SPM):
    name = os.path.basename(model)
    r = trit(["-m", model, "--jsonl"], stdin=src)
    check(r.returncode == 0, f"{name} --jsonl: exit {r.returncode} {r.stderr!r}")
    objs = [json.loads(l) for l in r.stdout.decode("utf-8").splitlines()]
    check([o["text"] for o in objs] == ["\x00x", "a\x00b", "\x00"], f"{name} --jsonl: texts {objs!r}")
    check(all(o["ids"] for o in objs), f"{name} --jsonl: an empty ids array: {objs!r}")
    if model == LLAMA3:
        for o in objs:
            b = bytes(dec[c] for i in o["ids"] for c in inv[i])
            check(b == o["text"].encode("utf-8"), f"llama3 --jsonl: ids {o['ids']} decode to {b!r}")
    if model == SPM:
        check(all(3 in o["ids"] for o in objs), f"spm --jsonl: no <0x00> (id 3) in {objs!r}")
    if model == MODEL:
        check(objs[0]["ids"] == [188, 87], f"default model --jsonl: ids of \\u0000x {objs[0]['ids']}")

# ---- --jsonl: "text" found and decoded wherever it is, however it is escaped ----------------------
# 300 objects (seeded): "text" among nested values whose strings hold quotes, backslashes and braces,
# with keys that look like it, written with and without ensure_ascii and with spaces around.
rng = random.Random(13)
ALPHABET = ["a", " ", "\x00", "\x01", "\"", "\\", "{", "}", "[", "]", ",", ":", "\u00e9", "\u65e5", "\U0001F600", "\n", "/"]


def rtext():
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 12)))


def rvalue(depth=0):
    k = rng.randrange(6 if depth < 2 else 3)
    return [rtext, lambda: rng.randrange(-5, 5), lambda: None, lambda: [rvalue(depth + 1) for _ in range(2)],
            lambda: {rtext(): rvalue(depth + 1), "text": rtext()}, lambda: 1.5e3][k]()


lines, texts = [], []
for i in range(300):
    obj = {rng.choice(["textx", "Text", "tex", "x"]): rvalue() for _ in range(rng.randrange(3))}
    t = rtext()
    items = list(obj.items()) + [("text", t)]
    rng.shuffle(items)
    sep = rng.choice([(",", ":"), (" , ", " : ")])
    lines.append("{" + sep[0].join(json.dumps(k, ensure_ascii=rng.random() < 0.5) + sep[1]
                                   + json.dumps(v, ensure_ascii=rng.random() < 0.5) for k, v in items) + "}")
    texts.append(t)
r = trit(["-m", MODEL, "--jsonl"], stdin=("\n".join(lines) + "\n").encode("utf-8"))
check(r.returncode == 0, f"random --jsonl: exit {r.returncode} {r.stderr[:300]!r}")
outs = [json.loads(l) for l in r.stdout.decode("utf-8").splitlines()]
check(len(outs) == len(texts), f"random --jsonl: {len(outs)} lines for {len(texts)}")
for line, o, t in zip(lines, outs, texts):
    check(o["text"] == t and (len(o["ids"]) > 0) == (len(t) > 0), f"random --jsonl: {line!r} -> {o!r}")

# ---- stdout on /dev/full: stop at the first record ----------------------------------------------
if os.path.exists("/dev/full"):
    many = b'{"text":"In the beginning God created"}\n' * 3000 + b"{bad\n"
    with open("/dev/full", "wb") as full:
        r = trit(["-m", MODEL, "--jsonl"], stdin=many, stdout=full)
        err = r.stderr.decode("utf-8", "replace")
        check(r.returncode == 1 and "trit tokenize: error: cannot write to stdout: " in err
              and "not valid JSON" not in err, f"--jsonl > /dev/full: exit {r.returncode}, {err!r}")
        r = trit(["-m", MODEL, "-p", TEXT * 50, "--pieces"], stdout=full)
        err = r.stderr.decode("utf-8", "replace")
        check(r.returncode == 1 and err.count("cannot write to stdout") == 1, f"--pieces > /dev/full: exit {r.returncode}, {err!r}")

if failures:
    sys.exit(f"{len(failures)} checks failed")
print("tokenize_json_check: all checks passed")
