#!/usr/bin/env python3
"""Reads a qtrain checkpoint with nothing but NumPy, as docs/checkpoint-format.md describes it.

    python3 tools/read_checkpoint.py RUN_OR_CHECKPOINT_DIR [--out weights.npz] [--forward]

Prints every tensor (name, how it is stored, shape, scale) and, with --out, saves the
dequantised FP32 weights under their Hugging Face names. --forward gives BitNet checkpoints'
tensors as the forward pass uses them (absmean ternary) instead of the latent weights.
Importable: `load(directory, forward=False)` returns {name: np.float32 array}.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np


def checkpoint_directory(path):
    """A checkpoint directory, or a run directory's newest checkpoint (its `latest` file)."""
    if os.path.exists(os.path.join(path, "state.json")):
        return path
    latest = os.path.join(path, "latest")
    if os.path.exists(latest):
        with open(latest) as f:
            return os.path.join(path, f.read().strip())
    raise SystemExit(f"{path} is neither a checkpoint nor a run directory with a `latest` file")


def read_safetensors(path):
    """(metadata, {name: (dtype, shape, raw bytes)}) of a safetensors file."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    tensors = {k: (v["dtype"], v["shape"], blob[base + v["data_offsets"][0]:base + v["data_offsets"][1]])
               for k, v in header.items()}
    return meta, tensors


def unpack_codes(raw, bits, count):
    """Integer codes of a packed tensor: ternary as base-3 bytes (five codes per byte, the first
    code the least significant digit, digit = code + 1), n-bit grids as an LSB-first bit stream of
    code - qn with qn = -2^(bits-1)."""
    data = np.frombuffer(raw, dtype=np.uint8)
    if bits == "1.58":
        digits = np.empty((data.size, 5), dtype=np.int8)
        rest = data.astype(np.int32)
        for i in range(5):
            digits[:, i] = rest % 3 - 1
            rest //= 3
        return digits.reshape(-1)[:count]
    b = int(bits)
    stream = np.unpackbits(data, bitorder="little")[:count * b].reshape(count, b)
    values = (stream.astype(np.int32) << np.arange(b, dtype=np.int32)).sum(axis=1)
    return (values - (1 << (b - 1))).astype(np.int8)


def ternarize(values):
    """`--weights ternary` of qtrain's eval, generate and export: absmean re-quantisation to
    {-1, 0, 1} with scale = 1/mean|W|; tensors that already hold one step's ternary codes keep them."""
    mags = np.unique(np.abs(values))
    if len(mags) <= 2 and (len(mags) == 1 or mags[0] == 0):
        return values
    beta = max(np.abs(values.astype(np.float64)).sum() / values.size, 1e-12)
    scale = np.float32(1 / beta)
    codes = np.clip(np.rint(values * scale), -1, 1).astype(np.float32)
    return codes * (np.float32(1) / scale)


def load(directory, forward=False, ternary=False):
    directory = checkpoint_directory(directory)
    meta, tensors = read_safetensors(os.path.join(directory, "model.safetensors"))
    out = {}
    for name, (dtype, shape, raw) in tensors.items():
        if name.endswith(".scale"):
            continue
        if dtype == "U8":
            shape = [int(s) for s in meta[name + ".shape"].split(",")]
            count = int(np.prod(shape))
            codes = unpack_codes(raw, meta[name + ".bits"], count)
            scale = np.frombuffer(tensors[name + ".scale"][2], dtype=np.float32)[0]
            # A code q stands for q / scale; qtrain multiplies by the FP32 reciprocal.
            values = codes.astype(np.float32) * (np.float32(1) / scale)
        elif dtype == "F32":
            values = np.frombuffer(raw, dtype=np.float32).copy()
        elif dtype == "BF16":
            values = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            raise SystemExit(f"{name}: unexpected dtype {dtype}")
        values = values.reshape(shape)
        if forward and meta.get("qtrain.quant_mode") == "bitnet" and values.ndim == 2:
            # As qtrain: beta = max(mean|W|, 1e-5), codes = clamp(rint(W · (1/beta)), -1, 1).
            beta = np.float32(max(np.abs(values.astype(np.float64)).mean(), 1e-5))
            codes = np.clip(np.rint(values * (np.float32(1) / beta)), -1, 1).astype(np.float32)
            values = codes * beta
        if ternary and values.ndim == 2:
            values = ternarize(values)
        out[name] = values
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--out", help="write the dequantised weights to this .npz")
    ap.add_argument("--forward", action="store_true", help="BitNet: the forward pass's ternary weights")
    ap.add_argument("--ternary", action="store_true", help="every matrix re-quantised to ternary (qtrain's --weights ternary)")
    args = ap.parse_args()
    directory = checkpoint_directory(args.checkpoint)
    with open(os.path.join(directory, "state.json")) as f:
        state = json.load(f)
    meta, tensors = read_safetensors(os.path.join(directory, "model.safetensors"))
    print(f"{directory}: step {state['step']}, mode {meta.get('qtrain.quant_mode')}, format {meta.get('qtrain.format')}")
    weights = load(directory, forward=args.forward or args.ternary, ternary=args.ternary)
    for name, values in weights.items():
        dtype = tensors[name][0]
        how = f"{meta[name + '.bits']}-bit codes" if dtype == "U8" else dtype
        print(f"  {name:48s} {how:16s} {list(values.shape)}  mean|w| {np.abs(values).mean():.5g}")
    if args.out:
        np.savez(args.out, **weights)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
