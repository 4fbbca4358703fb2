#!/usr/bin/env python3
"""Scores a pretrained GGUF model in llama.cpp (llama-cpp-python) and in qtrain after
`qtrain-dist import` (a run saved at step 0 with the fp32 policy), on the same tokens:

    python3 tools/check_smollm2.py MODEL.gguf --qtrain .build/release/qtrain-dist --checkpoint RUN \
        [--windows 8] [--tokens 32]

- perplexity over the same windows of the run's validation split: qtrain's `eval --windows-out`
  writes each window's tokens and loss, llama.cpp scores exactly those tokens;
- the largest logit difference over the first window (`eval --logits-out`);
- greedy continuations of three prompts for --tokens tokens (`generate --temperature 0`):
  identical, or the first divergence with llama.cpp's margin there (its logit of its own choice
  minus that of qtrain's), after which llama.cpp follows qtrain's tokens.
llama.cpp multiplies Q4_1/Q8_0 weights by activations it quantises to 8 bits per block of 32, so
its numbers are close to, not equal to, exact FP32 arithmetic on the same weights.
Prints one JSON object and OK when the perplexities agree within --tolerance (relative).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
from llama_cpp import Llama

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_llama_cpp import first_divergence, loss, read_logits  # noqa: E402

PROMPTS = ["The state of the Union is", "Fellow citizens, the economy", "In the year 1861, the nation"]


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd[:2])} failed: {r.stderr.strip()}")
    return r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("--qtrain", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--windows", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--tolerance", type=float, default=0.005)
    args = ap.parse_args()
    q = args.qtrain
    with tempfile.TemporaryDirectory() as tmp:
        wpath = os.path.join(tmp, "windows.jsonl")
        ours = json.loads(run([q, "eval", args.checkpoint, "--sequences", str(args.windows), "--json",
                               "--windows-out", wpath]))
        windows = [json.loads(line) for line in open(wpath)]
        lpath = os.path.join(tmp, "logits.safetensors")
        text = os.path.join(tmp, "text.txt")
        first = windows[0]["tokens"]
        # The first window's logits, from qtrain on the same tokens (its eval of a .bin would need
        # a shard; decoding and re-encoding the window gives the same ids for this tokenizer).
        llm = Llama(model_path=args.gguf, n_ctx=len(first) + 64, logits_all=True, n_threads=2, verbose=False,
                    n_batch=512)
        open(text, "w").write(llm.detokenize(first).decode("utf-8", errors="strict"))
        run([q, "eval", args.checkpoint, "--data", text, "--logits-out", lpath])
        logits = read_logits(lpath)
    theirs_losses = []
    for w in windows:
        toks = w["tokens"]
        llm.reset()
        llm.eval(toks[:-1])
        scores = np.array(llm.scores[:len(toks) - 1], dtype=np.float32)
        # scores[i] predicts toks[i + 1]: loss() scores rows 0..n-2 against tokens 1..n-1.
        theirs_losses.append(loss(np.vstack([scores, scores[-1:]]), np.array(toks)))
    lengths = [len(w["tokens"]) - 1 for w in windows]
    ours_loss = float(np.average([w["loss"] for w in windows], weights=lengths))
    theirs_loss = float(np.average(theirs_losses, weights=lengths))
    same_tokens = [int(t) for t in logits["tokens"]] == first[:len(logits["tokens"])]
    llm.reset()
    n = len(logits["tokens"])
    llm.eval([int(t) for t in logits["tokens"]])
    diff = np.abs(np.array(llm.scores[:n], dtype=np.float32) - logits["logits"])

    greedy = []
    for prompt in PROMPTS:
        out = run([q, "generate", args.checkpoint, "--prompt", prompt, "--temperature", "0", "--max-tokens",
                   str(args.tokens), "--print-ids"])
        q_ids = [int(x) for x in out.strip().splitlines()[-1].split()[1:]]
        divergence, margin = first_divergence(llm, prompt, q_ids)
        greedy.append({"prompt": prompt, "tokens": len(q_ids), "first_divergence": divergence,
                       "margin": margin, "text": llm.detokenize(q_ids).decode("utf-8", errors="replace")})
    result = {
        "gguf": os.path.basename(args.gguf), "windows": len(windows), "tokens": sum(lengths),
        "loss_qtrain": ours_loss, "loss_llama_cpp": theirs_loss,
        "perplexity_qtrain": float(np.exp(ours_loss)), "perplexity_llama_cpp": float(np.exp(theirs_loss)),
        "perplexity_relative_difference": float(np.exp(ours_loss - theirs_loss) - 1),
        "eval_loss": ours["loss"], "first_window_same_tokens": same_tokens,
        "max_abs_logit_diff": float(diff.max()), "mean_abs_logit_diff": float(diff.mean()),
        "logit_std": float(logits["logits"].std()), "greedy": greedy,
    }
    print(json.dumps(result))
    ok = abs(result["perplexity_relative_difference"]) <= args.tolerance and same_tokens
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
