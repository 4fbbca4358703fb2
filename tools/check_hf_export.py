#!/usr/bin/env python3
"""Checks a `qtrain-dist export --format hf` folder against qtrain itself.

Loads the folder with transformers' LlamaForCausalLM (float32, CPU), runs it on the first
window of a text, and compares its logits with the logits `qtrain-dist eval --activation-quant
off --logits-out` computes for the same checkpoint and tokens (a plain LLaMA has no activation
quantisation). Prints the maximum absolute difference and OK when it is below 1e-3.

    python3 tools/check_hf_export.py EXPORT_DIR --qtrain .build/release/qtrain-dist --checkpoint RUN

Needs torch, transformers and safetensors.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.numpy import load_file
from transformers import LlamaForCausalLM

TEXT = ("Fellow-Citizens of the Senate and House of Representatives: the state of the union is "
        "sound, and the public credit is restored. ") * 8


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("export_dir")
    ap.add_argument("--qtrain", required=True, help="path of the qtrain-dist binary")
    ap.add_argument("--checkpoint", required=True, help="the run or checkpoint that was exported")
    ap.add_argument("--tolerance", type=float, default=1e-3)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        text = os.path.join(tmp, "text.txt")
        with open(text, "w") as f:
            f.write(TEXT)
        out = os.path.join(tmp, "logits.safetensors")
        run = subprocess.run([args.qtrain, "eval", args.checkpoint, "--data", text, "--activation-quant", "off",
                              "--logits-out", out], capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit("qtrain eval failed: " + run.stderr)
        ours = load_file(out)

    model = LlamaForCausalLM.from_pretrained(args.export_dir, torch_dtype=torch.float32)
    model.eval()
    tokens = torch.tensor(ours["tokens"].astype(np.int64))[None, :]
    with torch.no_grad():
        theirs = model(tokens).logits[0].numpy()
    diff = float(np.abs(theirs - ours["logits"]).max())
    targets = ours["tokens"][1:]
    def loss(logits):
        z = logits[:-1] - logits[:-1].max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1))
        return float(np.mean(lse - z[np.arange(len(targets)), targets]))
    print(f"tokens {tokens.shape[1]}, vocabulary {theirs.shape[1]}")
    print(f"max |logits(transformers) - logits(qtrain)| = {diff:.3e}")
    print(f"loss on the window: transformers {loss(theirs):.6f}, qtrain {loss(ours['logits']):.6f}")
    if diff < args.tolerance:
        print("OK")
    else:
        sys.exit(f"logits differ by {diff} >= {args.tolerance}")


if __name__ == "__main__":
    main()
