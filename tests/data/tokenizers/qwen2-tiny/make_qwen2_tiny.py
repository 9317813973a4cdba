#!/usr/bin/env python3
"""make_qwen2_tiny.py: a small Qwen2/Qwen3-style tokenizer and the ids Hugging Face tokenizers gives
for hard strings, for tests/test_tokenizer_vocab.c and tests/test_chat_template.c.

    python3 -m venv /tmp/tokvenv && /tmp/tokvenv/bin/pip install tokenizers==0.23.3 jinja2==3.1.6
    /tmp/tokvenv/bin/python tests/data/tokenizers/qwen2-tiny/make_qwen2_tiny.py

Writes, next to itself:
  tokenizer.json         the structure of Qwen2.5/Qwen3's file (NFC normalizer; a Sequence of the
                         Qwen2 Split regex, Isolated, and ByteLevel without its regex; ByteLevel
                         post-processor and decoder; BPE without ignore_merges) with a 2000-token
                         vocabulary trained here on the KJV excerpt of tests/data/default-model plus
                         the multilingual lines below, then Qwen3's 26 added tokens in Qwen3's order
                         (<think>, </think>, <tool_call>, ... are added but not special, as in Qwen3);
  tokenizer_config.json  Qwen3's fields that matter here (no BOS, eos <|im_end|>, pad <|endoftext|>);
  cases.jsonl            {"text", "ids", "decoded"}: tokenizers' encode(text, add_special_tokens=False)
                         (added tokens in the text are matched, as trit does with PARSE_SPECIAL) and
                         decode(ids, skip_special_tokens=False);
  chat.jsonl             {"messages", "add_generation_prompt", "enable_thinking"?, "text"}: jinja2's
                         rendering of chat_template.jinja (Qwen3's template, Apache-2.0, verbatim) with
                         trim_blocks and lstrip_blocks, as transformers' apply_chat_template renders it.
"""
import json
import os
import random

import jinja2
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")
# Qwen3's added tokens from 151643 on: (content, special)
ADDED = [("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True), ("<|object_ref_start|>", True),
         ("<|object_ref_end|>", True), ("<|box_start|>", True), ("<|box_end|>", True), ("<|quad_start|>", True),
         ("<|quad_end|>", True), ("<|vision_start|>", True), ("<|vision_end|>", True), ("<|vision_pad|>", True),
         ("<|image_pad|>", True), ("<|video_pad|>", True), ("<tool_call>", False), ("</tool_call>", False),
         ("<|fim_prefix|>", False), ("<|fim_middle|>", False), ("<|fim_suffix|>", False), ("<|fim_pad|>", False),
         ("<|repo_name|>", False), ("<|file_sep|>", False), ("<tool_response>", False), ("</tool_response>", False),
         ("<think>", False), ("</think>", False)]
EXTRA_CORPUS = [
    "I'm sure they'll say it's fine, don't you think? We've seen it. You're right, I'd go.",
    "Numbers: 12345, 3.14159, 1,000,000 and 2024-06-01; version 10.2.3 costs $99.99 (about 50%).",
    "def foo(x):\n    return x ** 2  # comment\n\nclass Bar:\n    pass\n",
    "Café naïve résumé façade Ångström Zürich São Paulo Łódź crème brûlée",
    "你好，世界！这是一个测试。我们今天去北京。人工智能正在改变世界。",
    "日本語のテキストとカタカナ。東京は日本の首都です。",
    "한국어 텍스트입니다. 안녕하세요 세계.",
    "Россия и Украина. Привет, мир! Москва — столица.",
    "مرحبا بالعالم. Γειά σου Κόσμε. שלום עולם.",
    "Emoji: 😀👍🏽🇺🇸 and ❤️ 👨‍👩‍👧‍👦 🦙",
    "<html><body class=\"main\">Hello &amp; welcome</body></html>\r\n",
    "    indented\ttabs\tand  double  spaces\n\n\nthree newlines\r\nwindows",
]
CASES = [
    "", " ", "  ", "\n", "\n\n\n", "\t", "\r\n", " \n \n", "a\n\n  b", "  leading and trailing  ",
    "Hello, World!", "Hello world", " Hello world", "hello  world", "HELLO WORLD",
    "12345", " 12345", "3.14159", "1,000,000", "2024年6月1日", "x1y22z333", "١٢٣ ٤٥", "Ⅻ ½ ²",
    "I'm", "don't", "WE'LL", "She'S", "they'Re", "it's'", "'s", "'ſ", "''", "O'Neil's",
    "你好，世界！", "日本語のテキスト", "한국어", "Привет, мир!", "مرحبا", "Γειά σου",
    "😀", "👍🏽", "🇺🇸", "👨‍👩‍👧‍👦", "❤️", "a😀b", "🦙.cpp",
    "e\u0301", "Cafe\u0301", "A\u030a", "\u212b", "\u1100\u1161\u11a8", "\u1100\u1161", "\uac00\u11a8",
    "\u0958", "\u1e0b\u0323", "a\u0301\u0316", "\u0301abc", "\u0344", "\u2126", "\u00c5\u0301", "o\u0308\u0304",
    "\u0345\u0301", "x\u0338=", "\U00011935\U00011930", "\u1ac1\u0316",
    "\u00a0", "a\u00a0b", "a\u3000b", "a\u0085b", "a\u2028b", "a\u200bb", "\ufeffBOM", "a\u000bb\u000cc",
    "<|im_start|>user\nhi<|im_end|>\n", "<|im_start|>assistant\n<think>\nhmm\n</think>\n\nok<|im_end|>",
    "<|endoftext|><|endoftext|>", "x<|im_end|>y", "<think>", "< think>", "<|im_start|", "<tool_call>\n{\"a\": 1}\n</tool_call>",
    "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>", " <|im_end|> ",
    "def foo(x):\n    return x ** 2  # comment\n", "    indented\ttabs", "a  \n  b", "!!!???...---",
    "(parens) [brackets] {braces}", "http://example.com/path?q=1&r=2", "$99.99", "50%", "@user #tag",
    "The LORD said unto Abraham, Behold.", "And it came to pass, that\n\nthe man's wife said:",
]


def train():
    text = open(os.path.join(ROOT, "tests", "data", "default-model", "val_excerpt.txt"), encoding="utf-8").read()
    corpus = text.split("\n") + EXTRA_CORPUS * 20
    tok = Tokenizer(models.BPE(ignore_merges=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=2000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(corpus, trainer)
    from tokenizers import AddedToken
    for content, special in ADDED:
        t = AddedToken(content, special=special, normalized=False, lstrip=False, rstrip=False, single_word=False)
        (tok.add_special_tokens if special else tok.add_tokens)([t])
    return tok


def main():
    tok = train()
    path = os.path.join(HERE, "tokenizer.json")
    tok.save(path, pretty=False)
    j = json.load(open(path, encoding="utf-8"))
    j["decoder"] = dict(j["post_processor"])  # Qwen's decoder fields (the Python setter does not keep them)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False, separators=(",", ":"))
    tok = Tokenizer.from_file(path)  # the ids come from the file as written
    assert j["normalizer"] == {"type": "NFC"} and j["model"]["ignore_merges"] is False
    config = {"add_bos_token": False, "add_prefix_space": False, "bos_token": None, "clean_up_tokenization_spaces": False,
              "eos_token": "<|im_end|>", "errors": "replace", "model_max_length": 131072, "pad_token": "<|endoftext|>",
              "split_special_tokens": False, "tokenizer_class": "Qwen2Tokenizer", "unk_token": None}
    with open(os.path.join(HERE, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
        f.write("\n")

    rng = random.Random(17)
    atoms = ["a", "Z", " ", "  ", "\n", "\r\n", "\t", "1", "23", "'s", "'LL", "e\u0301", "\u0316", "\u0301", "\u0323",
             "\u1100", "\u1161", "\u11a8", "\uac00", "é", "日本", "😀", "\u200d", "👍", "\U0001f3fd", ",", ".", "!?",
             "<|im_end|>", "<think>", "\u00a0", "\u3000", "\u0085", "the", "LORD", "ſ", "İ", "ß"]
    rand = ["".join(rng.choice(atoms) for _ in range(rng.randrange(1, 14))) for _ in range(200)]
    with open(os.path.join(HERE, "cases.jsonl"), "w", encoding="utf-8") as f:
        for text in CASES + rand:
            ids = tok.encode(text, add_special_tokens=False).ids
            dec = tok.decode(ids, skip_special_tokens=False)
            f.write(json.dumps({"text": text, "ids": ids, "decoded": dec}, ensure_ascii=False) + "\n")

    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    tmpl = env.from_string(open(os.path.join(HERE, "chat_template.jinja"), encoding="utf-8").read())
    sys_m = {"role": "system", "content": "Be brief."}
    convs = [
        ([{"role": "user", "content": "Who was Moses?"}], True, None),
        ([{"role": "user", "content": "Who was Moses?"}], True, False),
        ([sys_m, {"role": "user", "content": "Hi"}], False, None),
        ([sys_m, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "<think>\nThe user greets.\n</think>\n\nHello!"},
          {"role": "user", "content": "Who was Moses?"}], True, None),
        ([{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "<think>r1</think>A1"},
          {"role": "user", "content": "Q2"}, {"role": "assistant", "content": "<think>\n\nr2\n\n</think>\n\nA2"}], False, None),
        ([{"role": "user", "content": "Q"}, {"role": "assistant", "content": "plain answer"}], False, None),
        ([{"role": "user", "content": "Q"}, {"role": "assistant", "content": "x</think>y</think>z"},
          {"role": "system", "content": "late system"}, {"role": "user", "content": "<tool_response>t</tool_response>"}], True, None),
        ([{"role": "user", "content": "Q"}, {"role": "tool", "content": "r1"}, {"role": "tool", "content": "r2"},
          {"role": "assistant", "content": "done"}], True, None),
    ]
    with open(os.path.join(HERE, "chat.jsonl"), "w", encoding="utf-8") as f:
        for messages, gen, thinking in convs:
            kw = {} if thinking is None else {"enable_thinking": thinking}
            text = tmpl.render(messages=messages, add_generation_prompt=gen, bos_token="", eos_token="<|im_end|>", **kw)
            rec = {"messages": messages, "add_generation_prompt": gen, "text": text}
            if thinking is not None:
                rec["enable_thinking"] = thinking
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
