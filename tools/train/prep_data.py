#!/usr/bin/env python3
"""Data preparation for trit's default model.

1. Dump the King James Bible from Debian's bible-kjv-text with the `bible` program
   (package bible-kjv), one verse per line with its reference ("Ge1:1 In the beginning ...").
2. Clean to plain text: drop the references; one verse per line, a blank line between chapters.
3. Split by chapter: every 20th chapter (chapter index i over the whole Bible, 0-based,
   i % 20 == 19) is held out for validation (59 of 1189 chapters, ~5%). The rest is training text.
4. Train a byte-level BPE tokenizer (Llama 3 structure) on the training text only.
5. Tokenize train/val into uint16 arrays (data/train.u16, data/val.u16), without special tokens.

Outputs: data/{raw,train,val}.txt, data/{train,val}.u16, out/val_excerpt.txt, out/tokenizer/*.json
"""
import argparse
import json
import os
import re
import subprocess

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
OUT = os.path.join(HERE, "out")

# The Llama 3 pre-tokenizer pattern, verbatim from Meta's tokenizer.json.
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ message['role'] + ':\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'assistant:\\n' }}{% endif %}"
)


def dump_bible():
    # -f turns pretty-printing off: one verse per line, prefixed by its reference.
    txt = subprocess.run(["bible", "-f", "-m", "8000", "gen1:1-rev22:21"], stdin=subprocess.DEVNULL,
                         check=True, capture_output=True, text=True).stdout
    return txt


def chapters_from_raw(raw):
    ref = re.compile(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$")
    chapters = []  # list of (book, chapter, [verses])
    for line in raw.splitlines():
        if not line.strip():
            continue
        m = ref.match(line)
        if not m:
            raise SystemExit(f"unexpected line: {line!r}")
        book, ch, _, text = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4).strip()
        text = re.sub(r"\s+", " ", text)
        if not chapters or chapters[-1][0] != book or chapters[-1][1] != ch:
            chapters.append((book, ch, []))
        chapters[-1][2].append(text)
    return chapters


def train_tokenizer(train_text_path, vocab_size, outdir):
    from tokenizers import Tokenizer, Regex, decoders, models, pre_tokenizers, trainers, processors
    from tokenizers import AddedToken

    n_merge_vocab = vocab_size - len(SPECIALS)  # specials go at the end, like Llama 3
    tok = Tokenizer(models.BPE(byte_fallback=False, ignore_merges=True))
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=n_merge_vocab, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train([train_text_path], trainer)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIALS])
    bos_id = tok.token_to_id(SPECIALS[0])
    # Same post-processor as Meta's Llama 3 tokenizer.json: ByteLevel, then prepend BOS.
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
        processors.TemplateProcessing(single=f"{SPECIALS[0]}:0 $A:0",
                                      pair=f"{SPECIALS[0]}:0 $A:0 {SPECIALS[0]}:1 $B:1",
                                      special_tokens=[(SPECIALS[0], bos_id)]),
    ])
    os.makedirs(outdir, exist_ok=True)
    path = os.path.join(outdir, "tokenizer.json")
    tok.save(path)
    # Make sure the saved JSON has exactly the structure our C tokenizer implements.
    d = json.load(open(path))
    assert d["normalizer"] is None
    assert d["model"]["type"] == "BPE" and d["model"]["byte_fallback"] is False
    d["model"]["ignore_merges"] = True
    d["model"]["dropout"] = None
    d["model"]["fuse_unk"] = False
    # Merges as "left right" strings, the form of Meta's Llama 3 file (byte-level symbols never hold a space).
    merges = []
    for m in d["model"]["merges"]:
        if isinstance(m, list):
            assert len(m) == 2 and " " not in m[0] and " " not in m[1], m
            m = m[0] + " " + m[1]
        merges.append(m)
    d["model"]["merges"] = merges
    pt = d["pre_tokenizer"]["pretokenizers"]
    assert pt[0]["type"] == "Split" and pt[0]["pattern"] == {"Regex": LLAMA3_PATTERN}, pt[0]
    assert pt[0]["behavior"] == "Isolated" and pt[0]["invert"] is False
    assert pt[1] == {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}, pt[1]
    assert d["decoder"]["type"] == "ByteLevel"
    assert len(d["model"]["vocab"]) + len(d["added_tokens"]) == vocab_size
    assert [a["id"] for a in d["added_tokens"]] == list(range(n_merge_vocab, vocab_size))
    with open(path, "w", encoding="utf-8") as f:
        json.dump(d, f, ensure_ascii=False, indent=2)
    added = {str(a["id"]): {k: a[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word", "special")}
             for a in d["added_tokens"]}
    cfg = {
        "added_tokens_decoder": added,
        "bos_token": SPECIALS[0],
        "eos_token": SPECIALS[1],
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 256,
        "model_input_names": ["input_ids", "attention_mask"],
        "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": CHAT_TEMPLATE,
    }
    with open(os.path.join(outdir, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--excerpt-bytes", type=int, default=40000)
    args = ap.parse_args()
    os.makedirs(DATA, exist_ok=True)
    os.makedirs(OUT, exist_ok=True)

    raw = dump_bible()
    open(os.path.join(DATA, "raw.txt"), "w").write(raw)
    chapters = chapters_from_raw(raw)
    assert len(chapters) == 1189, len(chapters)
    nverses = sum(len(c[2]) for c in chapters)
    assert nverses == 31102, nverses
    train, val = [], []
    for i, (_, _, verses) in enumerate(chapters):
        (val if i % 20 == 19 else train).append("\n".join(verses) + "\n")
    train_text = "\n".join(train)
    val_text = "\n".join(val)
    open(os.path.join(DATA, "train.txt"), "w").write(train_text)
    open(os.path.join(DATA, "val.txt"), "w").write(val_text)
    open(os.path.join(OUT, "val.txt"), "w").write(val_text)
    # Excerpt: the first whole held-out chapters, up to about excerpt-bytes.
    ex, n = [], 0
    for c in val:
        if n + len(c) + 1 > args.excerpt_bytes and ex:
            break
        ex.append(c)
        n += len(c) + 1
    excerpt = "\n".join(ex)
    open(os.path.join(OUT, "val_excerpt.txt"), "w").write(excerpt)
    print(f"chapters: train {len(train)} val {len(val)}; bytes train {len(train_text)} val {len(val_text)} "
          f"excerpt {len(excerpt)} ({len(ex)} chapters)")

    tokdir = os.path.join(OUT, "tokenizer")
    train_tokenizer(os.path.join(DATA, "train.txt"), args.vocab, tokdir)
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(tokdir, "tokenizer.json"))
    for name, text in (("train", train_text), ("val", val_text)):
        ids = tok.encode(text, add_special_tokens=False).ids
        assert tok.decode(ids) == text
        np.asarray(ids, dtype=np.uint16).tofile(os.path.join(DATA, f"{name}.u16"))
        print(f"{name}: {len(ids)} tokens, {len(text)/len(ids):.2f} bytes/token")


if __name__ == "__main__":
    main()
