"""Reference for the block-wise 8-bit optimizer state (optim.state_dtype: int8), written from
the scheme's description in the kernel's header comment, not from its code: one absmax per
tensor-aligned block of 2048, codes of 1.875 * value / absmax on an 8-bit float grid (E4M3 with
a sign for m, E5M3 for v), rounded to the nearest grid value.

    python3 tools/make_state8_fixture.py > Tests/QTrainTests/Fixtures/state8_blockwise.json
"""
import json

import numpy as np

BLOCK = 2048
MAX = 1.875  # the largest code's value


def grid(signed):
    """Every code's value, exactly (float64), in code order: an 8-bit float with 3 mantissa
    bits, exponent bias 15 (first moment, 7 bits + sign) or 31 (second moment, 8 bits)."""
    bias, codes = (15, 128) if signed else (31, 256)
    out = []
    for code in range(codes):
        e, m = code >> 3, code & 7
        out.append(m / 8 * 2.0 ** (1 - bias) if e == 0 else (1 + m / 8) * 2.0 ** (e - bias))
    return np.array(out)


def table(signed):
    g = grid(signed).astype(np.float32)
    return np.concatenate([g, -g]).astype(np.float32) if signed else g


def encode(x, first, signed):
    """Codes and scales of x, element i being element first+i of a tensor: the nearest grid
    value (halves up) found by searching the grid, not by the kernel's bit arithmetic."""
    x = np.asarray(x, dtype=np.float32)
    g = grid(signed)
    codes = np.zeros(len(x), dtype=np.int64)
    scales = []
    i = 0
    while i < len(x):
        stop = min(len(x), ((first + i) // BLOCK + 1) * BLOCK - first)
        blk = x[i:stop]
        absmax = np.float32(np.max(np.abs(blk))) if len(blk) else np.float32(0)
        scales.append(float(absmax))
        if absmax > 0:
            inv = np.float32(MAX) / absmax
            a = np.minimum((np.abs(blk) if signed else np.maximum(blk, 0)) * inv, np.float32(MAX)).astype(np.float64)
            c = np.clip(np.searchsorted(g, a, side="right") - 1, 0, len(g) - 1)
            top = c == len(g) - 1
            lo, hi = g[c], g[np.minimum(c + 1, len(g) - 1)]
            c = c + ((~top) & ((a - lo) >= (hi - a)))
            if signed:
                c = np.where((blk < 0) & (c > 0), c | 0x80, c)
            codes[i:stop] = c
        i = stop
    return codes, np.array(scales, dtype=np.float32)


def decode(codes, scales, first, signed):
    t = table(signed)
    out = np.zeros(len(codes), dtype=np.float32)
    i, b = 0, 0
    while i < len(codes):
        stop = min(len(codes), ((first + i) // BLOCK + 1) * BLOCK - first)
        out[i:stop] = t[codes[i:stop]] * (np.float32(scales[b]) / np.float32(MAX))
        i, b = stop, b + 1
    return out


def main():
    rng = np.random.default_rng(20261202)
    cases = []
    for name, signed, first, n in [("m", True, 0, 3 * BLOCK + 500), ("v", False, 0, 2 * BLOCK + 77),
                                   ("m, range starting inside a block", True, 1000, BLOCK + 3000),
                                   ("v, range starting inside a block", False, 1500, 3000)]:
        # Blocks of different magnitudes, heavy tails, exact zeros and one all-zero block.
        x = rng.standard_normal(n).astype(np.float32) * np.float32(10.0) ** rng.integers(-6, 2, n).astype(np.float32)
        x[rng.random(n) < 0.05] = 0
        if not signed:
            x = (x * x).astype(np.float32)
        zero_block = slice(BLOCK - first % BLOCK if first % BLOCK else BLOCK, min(n, (BLOCK - first % BLOCK if first % BLOCK else BLOCK) + BLOCK))
        if "inside" not in name:
            x[zero_block] = 0
        codes, scales = encode(x, first, signed)
        cases.append({"name": name, "signed": signed, "first": first, "input": [float(v) for v in x],
                      "codes": [int(c) for c in codes], "scales": [float(s) for s in scales],
                      "decoded": [float(v) for v in decode(codes, scales, first, signed)]})
    json.dump({"block": BLOCK, "signed_table": [float(v) for v in table(True)],
               "unsigned_table": [float(v) for v in table(False)], "cases": cases}, __import__("sys").stdout)


if __name__ == "__main__":
    main()
