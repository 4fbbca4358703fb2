#!/usr/bin/env python3
"""Writes one small corpus in every input format `prepare` reads, with Python's own writers
(json, gzip, zstandard, pyarrow), then reads each file back with Python's own readers and
writes what they read to EXPECTED ({file: [document text, ...]}) -- the oracle the Swift
readers are checked against.

usage: make_corpus_formats.py OUT_DIR EXPECTED.json
"""
import gzip
import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

DOCUMENTS = [
    "Plain ASCII text.\nSecond line.",
    "Accents: café, naïve, Ångström; CJK: 東京; emoji: 🙂👍🏽; combining: e\u0301.",
    "Windows line ends\r\nstay as written\r\n",
    "Quotes \"inside\", a backslash \\ and a tab\there, control \u0001 and \u007f.",
    "Non-BMP by escape: \U0001F600 and U+2028: \u2028 and U+00A0: \u00a0.",
    "<|endoftext|> typed in the text",
    "",
    " leading and trailing spaces ",
    "x" * 5000,
]


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    records = [{"id": i, "text": t, "meta": {"tags": ["a", 1, None, True, 2.5e-3]}} for i, t in enumerate(DOCUMENTS)]

    def jsonl(ascii_only):
        return "".join(json.dumps(r, ensure_ascii=ascii_only) + "\n" for r in records).encode("utf-8")

    with open(os.path.join(out, "a.jsonl"), "wb") as f:
        f.write(jsonl(False))
    with gzip.open(os.path.join(out, "b.jsonl.gz"), "wb") as f:
        f.write(jsonl(True))
    with open(os.path.join(out, "c.jsonl.zst"), "wb") as f:
        f.write(zstandard.ZstdCompressor(level=3).compress(jsonl(False)))
    # Two gzip members one after the other, as `cat x.gz y.gz` makes.
    with open(os.path.join(out, "d.txt.gz"), "wb") as f:
        text = DOCUMENTS[1].encode("utf-8")
        f.write(gzip.compress(text[:20]) + gzip.compress(text[20:]))
    with open(os.path.join(out, "e.txt"), "wb") as f:
        f.write(DOCUMENTS[2].encode("utf-8"))
    with open(os.path.join(out, "f.txt.zst"), "wb") as f:
        f.write(zstandard.ZstdCompressor().compress(DOCUMENTS[3].encode("utf-8")))
    table = pa.table({"id": list(range(len(DOCUMENTS))), "text": DOCUMENTS})
    pq.write_table(table, os.path.join(out, "g.parquet"), row_group_size=4)

    expected = {}
    for name in sorted(os.listdir(out)):
        path = os.path.join(out, name)
        if name.endswith(".jsonl"):
            with open(path, encoding="utf-8") as f:
                expected[name] = [json.loads(line)["text"] for line in f]
        elif name.endswith(".jsonl.gz"):
            with gzip.open(path, "rt", encoding="utf-8") as f:
                expected[name] = [json.loads(line)["text"] for line in f]
        elif name.endswith(".jsonl.zst"):
            with open(path, "rb") as f:
                data = zstandard.ZstdDecompressor().stream_reader(f).read().decode("utf-8")
            expected[name] = [json.loads(line)["text"] for line in data.split("\n") if line]
        elif name.endswith(".txt.gz"):
            with gzip.open(path, "rb") as f:
                expected[name] = [f.read().decode("utf-8")]
        elif name.endswith(".txt.zst"):
            with open(path, "rb") as f:
                expected[name] = [zstandard.ZstdDecompressor().stream_reader(f).read().decode("utf-8")]
        elif name.endswith(".txt"):
            with open(path, "rb") as f:
                expected[name] = [f.read().decode("utf-8")]
        elif name.endswith(".parquet"):
            expected[name] = pq.read_table(path).column("text").to_pylist()
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=True)


if __name__ == "__main__":
    main()
