#!/usr/bin/env python3
"""Runs a `qtrain-dist export --format gguf` file in llama.cpp (llama-cpp-python) and compares
it with qtrain on the same checkpoint, activation quantisation off in qtrain:

    python3 tools/check_llama_cpp.py MODEL.gguf --qtrain .build/release/qtrain-dist --checkpoint RUN

- next-token logits over the first window of a text against `qtrain-dist eval
  --activation-quant off --logits-out` (llama.cpp quantises activations internally, to 8 bits
  per block of 32 or 256, so the logits agree only approximately: the bound is printed);
- greedy generation of 32 tokens against `qtrain-dist generate --temperature 0
  --activation-quant off`: identical, or the first divergence and llama.cpp's margin there
  (its logit of its own choice minus that of qtrain's).
Prints a JSON line of the numbers and OK when the loss agrees within --loss-tolerance (relative)
and generation diverges nowhere or only where llama.cpp's margin is below --margin.
tools/check_llama_cpp.sh installs llama-cpp-python and runs this on small ternary and 8-bit models.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from llama_cpp import Llama

TEXT = ("Fellow-Citizens of the Senate and House of Representatives: the state of the union is "
        "sound, and the public credit is restored. ") * 8
PROMPT = "The state of the Union is"


def read_logits(path):
    import struct
    blob = open(path, "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        dtype = {"F32": np.float32, "I32": np.int32, "I64": np.int64}[v["dtype"]]
        out[k] = np.frombuffer(blob[8 + n + a:8 + n + b], dtype=dtype).reshape(v["shape"])
    return out


def loss(logits, tokens):
    targets = tokens[1:]
    z = logits[:-1].astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(lse - z[np.arange(len(targets)), targets]))


def first_divergence(llm, prompt, q_ids):
    """Feeds `prompt`, then qtrain's greedy tokens one by one, to llama.cpp: the first position
    where llama.cpp's own argmax differs, and its margin there (its logit of its choice minus that
    of qtrain's), or (None, None). It continues along qtrain's tokens, so that later positions
    compare like with like."""
    llm.reset()
    llm.eval(llm.tokenize(prompt.encode(), add_bos=False, special=False))
    for i, t in enumerate(q_ids):
        scores = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        choice = int(scores.argmax())
        if choice != t:
            return i, float(scores[choice] - scores[t])
        llm.eval([t])
    return None, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("--qtrain", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--loss-tolerance", type=float, default=0.02)
    ap.add_argument("--margin", type=float, default=0.5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        text = os.path.join(tmp, "text.txt")
        open(text, "w").write(TEXT)
        out = os.path.join(tmp, "logits.safetensors")
        r = subprocess.run([args.qtrain, "eval", args.checkpoint, "--data", text, "--activation-quant", "off",
                            "--logits-out", out], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("qtrain eval failed: " + r.stderr)
        ours = read_logits(out)
    tokens = [int(t) for t in ours["tokens"]]
    llm = Llama(model_path=args.gguf, n_ctx=len(tokens) + 8, logits_all=True, n_threads=2, verbose=False)
    llm.reset()
    llm.eval(tokens)
    theirs = np.array(llm.scores[:len(tokens)], dtype=np.float32)
    diff = np.abs(theirs - ours["logits"])
    spread = float(ours["logits"].std())
    agree = float((theirs.argmax(axis=1) == ours["logits"].argmax(axis=1)).mean())
    l_ours, l_theirs = loss(ours["logits"], np.array(tokens)), loss(theirs, np.array(tokens))

    r = subprocess.run([args.qtrain, "generate", args.checkpoint, "--prompt", PROMPT, "--temperature", "0",
                        "--max-tokens", str(args.tokens), "--activation-quant", "off", "--compute", "fp32", "--print-ids"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("qtrain generate failed: " + r.stderr)
    q_ids = [int(x) for x in r.stdout.strip().splitlines()[-1].split()[1:]]
    first, margin = first_divergence(llm, PROMPT, q_ids)
    result = {"gguf": os.path.basename(args.gguf), "tokens": len(tokens),
              "max_abs_logit_diff": float(diff.max()), "mean_abs_logit_diff": float(diff.mean()),
              "logit_std": spread, "argmax_agreement": agree, "loss_qtrain": l_ours, "loss_llama_cpp": l_theirs,
              "greedy_tokens": len(q_ids), "first_divergence": first, "margin_at_divergence": margin,
              "greedy_identical": first is None}
    print(json.dumps(result))
    ok = abs(l_theirs - l_ours) <= args.loss_tolerance * abs(l_ours) and (first is None or margin < args.margin)
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
