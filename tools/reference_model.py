#!/usr/bin/env python3
"""Independent NumPy (float64) reference for a tiny LLaMA-structured model.

What it is
----------
A self-contained forward pass + hand-written backward pass (NumPy has no
autograd) for a tiny pre-norm LLaMA decoder. It computes the mean
cross-entropy loss, the logits and the gradient of the loss with respect to
every parameter, and writes them (together with the weights and the token
batch) to a safetensors file that the Swift trainer's tests compare against.

How to re-run
-------------
    python3 tools/reference_model.py          # regenerates the fixture
        -> Tests/QTrainTests/Fixtures/reference_tiny.safetensors
    python3 tools/reference_model.py --check  # finite-difference check of the
                                              # hand-written backward pass
    python3 tools/reference_model.py --out PATH   # write somewhere else
    python3 tools/reference_model.py --variant gqa-tied [--check]
        -> Tests/QTrainTests/Fixtures/reference_tiny_gqa_tied.safetensors
           (4 query heads over 2 key/value heads, lm_head tied to the embedding)

Only python3 + numpy are needed (the safetensors file is written and read by
hand below). Paths are resolved relative to the repository root.

Model conventions
-----------------
Config: vocab V=32, dim C=16, n_layers L=2, n_heads H=2 (head dim d=8),
ffn F=40, seq T=8, batch B=2, rms eps=1e-5, rope theta=10000.

Parameters use Hugging Face LLaMA names and shapes; Linear weights are stored
(out, in), row-major, and applied as y = x @ W.T. No biases.
    model.embed_tokens.weight                         (V, C)
    model.layers.{l}.input_layernorm.weight           (C,)
    model.layers.{l}.self_attn.{q,k,v,o}_proj.weight  (C, C)
    model.layers.{l}.post_attention_layernorm.weight  (C,)
    model.layers.{l}.mlp.gate_proj.weight             (F, C)
    model.layers.{l}.mlp.up_proj.weight               (F, C)
    model.layers.{l}.mlp.down_proj.weight             (C, F)
    model.norm.weight                                 (C,)
    lm_head.weight                                    (V, C)   untied
Variant gqa-tied: H=4 query heads (d=4) and G=2 key/value heads, so k_proj and
v_proj are (G*d, C) and query head n reads key/value head n // (H/G); no
lm_head.weight: the logits are rmsnorm(x) @ embed_tokens.T and the table's
gradient is the sum of the lookup's and the head's.

Forward:
    x = embed[tokens]                                           (B, T, C)
    per block:
        h  = rmsnorm(x, w_in)
        q, k, v = h @ Wq.T, h @ Wk.T, h @ Wv.T
        head n uses channels [n*d, (n+1)*d)
        RoPE on q and k, rotate-half layout: for position p and i < d/2,
            angle = p * theta**(-2i/d); x1 = first half, x2 = second half
            out1 = x1*cos - x2*sin ; out2 = x2*cos + x1*sin
        scores = q_h @ k_h.T / sqrt(d), causal (key j > query i masked),
        softmax over keys, o_h = P @ v_h, heads concatenated in order
        x = x + o @ Wo.T
        h2 = rmsnorm(x, w_post)
        x = x + (silu(h2 @ Wgate.T) * (h2 @ Wup.T)) @ Wdown.T,
            silu(g) = g * sigmoid(g)
    logits = rmsnorm(x, w_norm) @ lm_head.T                     (B, T, V)
    loss = mean over the B*T positions of cross-entropy (natural log)
    rmsnorm(x, w) = x / sqrt(mean(x**2, last axis) + eps) * w

Initialisation: numpy.random.default_rng(1234); parameters are drawn in the
order listed above (embed; for each layer: input_layernorm, q, k, v, o,
post_attention_layernorm, gate, up, down; model.norm; lm_head), matrices as
normal(0, 0.3), norm gains as 1 + normal(0, 0.1). Then tokens and targets are
drawn from the same generator as integers(0, V, size=(B, T)). Every weight is
rounded to float32 and those exact float32 values (cast to float64) are used
for all computation, so a float32 consumer sees identical inputs.

File contents: every parameter (F32, HF name), `tokens` and `targets`
(I32, [B, T]), `loss` (F64, [1]), `logits` (F64, [B, T, V]) and
`grad.<param name>` (F64, parameter shape) for every parameter, plus
__metadata__ with the config.
"""

import argparse
import json
import os
import struct
import sys

import numpy as np

# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------
V, C, L, H, F, T, B = 32, 16, 2, 2, 40, 8, 2
D = C // H  # head dim
KVH = H  # key/value heads
TIED = False
EPS = 1e-5
THETA = 10000.0
SEED = 1234

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(
    REPO_ROOT, "Tests", "QTrainTests", "Fixtures", "reference_tiny.safetensors")
VARIANT_OUT = os.path.join(
    REPO_ROOT, "Tests", "QTrainTests", "Fixtures", "reference_tiny_gqa_tied.safetensors")


def use_gqa_tied():
    """Switches the module to the gqa-tied variant (before anything is drawn)."""
    global H, D, KVH, TIED
    H, KVH, TIED = 4, 2, True
    D = C // H
    METADATA.update(n_heads=str(H), n_kv_heads=str(KVH), tie_embeddings="true")

METADATA = {
    "vocab_size": str(V), "dim": str(C), "n_layers": str(L),
    "n_heads": str(H), "ffn_dim": str(F), "seq_len": str(T),
    "batch": str(B), "norm_eps": "1e-05", "rope_theta": "10000.0",
    "generator": "tools/reference_model.py",
}


def layer_param_specs(l):
    p = f"model.layers.{l}."
    return [
        (p + "input_layernorm.weight", (C,), "norm"),
        (p + "self_attn.q_proj.weight", (C, C), "matrix"),
        (p + "self_attn.k_proj.weight", (KVH * D, C), "matrix"),
        (p + "self_attn.v_proj.weight", (KVH * D, C), "matrix"),
        (p + "self_attn.o_proj.weight", (C, C), "matrix"),
        (p + "post_attention_layernorm.weight", (C,), "norm"),
        (p + "mlp.gate_proj.weight", (F, C), "matrix"),
        (p + "mlp.up_proj.weight", (F, C), "matrix"),
        (p + "mlp.down_proj.weight", (C, F), "matrix"),
    ]


def param_specs():
    specs = [("model.embed_tokens.weight", (V, C), "matrix")]
    for l in range(L):
        specs += layer_param_specs(l)
    specs += [("model.norm.weight", (C,), "norm")]
    if not TIED:
        specs += [("lm_head.weight", (V, C), "matrix")]
    return specs


def init():
    """Returns (params32: name -> float32 array, tokens, targets)."""
    rng = np.random.default_rng(seed=SEED)
    params = {}
    for name, shape, kind in param_specs():
        if kind == "matrix":
            w = rng.normal(0.0, 0.3, size=shape)
        else:
            w = 1.0 + rng.normal(0.0, 0.1, size=shape)
        params[name] = w.astype(np.float32)
    tokens = rng.integers(0, V, size=(B, T)).astype(np.int32)
    targets = rng.integers(0, V, size=(B, T)).astype(np.int32)
    return params, tokens, targets


# --------------------------------------------------------------------------
# Building blocks: forward returns (out, cache); backward(dout, cache)
# --------------------------------------------------------------------------
def rmsnorm_fwd(x, w):
    r = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS)
    return x * r * w, (x, w, r)


def rmsnorm_bwd(dy, cache):
    x, w, r = cache
    dw = np.sum(dy * x * r, axis=tuple(range(dy.ndim - 1)))
    g = dy * w
    # y_j = x_j r w_j, dr/dx_j = -r^3 x_j / C
    dx = r * g - (r ** 3) * x * np.mean(g * x, axis=-1, keepdims=True)
    return dx, dw


def rope_tables():
    inv_freq = THETA ** (-2.0 * np.arange(D // 2) / D)          # (d/2,)
    ang = np.arange(T)[:, None] * inv_freq[None, :]             # (T, d/2)
    cos = np.concatenate([np.cos(ang), np.cos(ang)], axis=-1)   # (T, d)
    sin = np.concatenate([np.sin(ang), np.sin(ang)], axis=-1)
    return cos, sin


def rotate_half(x):
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return np.concatenate([-x2, x1], axis=-1)


def rope_fwd(x, cos, sin):
    # x: (B, H, T, d); out = x*cos + rotate_half(x)*sin
    return x * cos + rotate_half(x) * sin


def rope_bwd(dy, cos, sin):
    # transpose of rotate_half is -rotate_half
    return dy * cos - rotate_half(dy * sin)


def split_heads(x, heads=None):   # (B, T, heads*d) -> (B, heads, T, d)
    heads = heads or H
    return x.reshape(B, T, heads, D).transpose(0, 2, 1, 3)


def repeat_kv(x):     # (B, G, T, d) -> (B, H, T, d): query head n reads n // (H/G)
    return np.repeat(x, H // KVH, axis=1)


def sum_kv(dx):       # the transpose of repeat_kv: each group's query heads summed
    return dx.reshape(B, KVH, H // KVH, T, D).sum(axis=2)


def merge_heads(x):   # (B, heads, T, d) -> (B, T, heads*d)
    return x.transpose(0, 2, 1, 3).reshape(B, T, -1)


def attention_fwd(q, k, v):
    # q, k, v: (B, H, T, d)
    scale = 1.0 / np.sqrt(D)
    s = np.einsum("bhid,bhjd->bhij", q, k) * scale
    mask = np.triu(np.ones((T, T), dtype=bool), k=1)   # j > i
    s = np.where(mask, -np.inf, s)
    s = s - np.max(s, axis=-1, keepdims=True)
    e = np.exp(s)
    p = e / np.sum(e, axis=-1, keepdims=True)
    o = np.einsum("bhij,bhjd->bhid", p, v)
    return o, (q, k, v, p)


def attention_bwd(do, cache):
    q, k, v, p = cache
    scale = 1.0 / np.sqrt(D)
    dv = np.einsum("bhij,bhid->bhjd", p, do)
    dp = np.einsum("bhid,bhjd->bhij", do, v)
    ds = p * (dp - np.sum(dp * p, axis=-1, keepdims=True))  # masked: p = 0
    dq = np.einsum("bhij,bhjd->bhid", ds, k) * scale
    dk = np.einsum("bhij,bhid->bhjd", ds, q) * scale
    return dq, dk, dv


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def linear_bwd(dy, x, w):
    """y = x @ w.T ; returns dx, dw (summed over all leading axes)."""
    dx = dy @ w
    dw = dy.reshape(-1, dy.shape[-1]).T @ x.reshape(-1, x.shape[-1])
    return dx, dw


# --------------------------------------------------------------------------
# Full model
# --------------------------------------------------------------------------
def forward(P, tokens, targets):
    """P: name -> float64 array. Returns loss, logits, caches."""
    cos, sin = rope_tables()
    caches = {"tokens": tokens}
    x = P["model.embed_tokens.weight"][tokens]                 # (B, T, C)
    for l in range(L):
        pre = f"model.layers.{l}."
        c = {"x_in": x}
        h, c["n1"] = rmsnorm_fwd(x, P[pre + "input_layernorm.weight"])
        c["h"] = h
        q = h @ P[pre + "self_attn.q_proj.weight"].T
        k = h @ P[pre + "self_attn.k_proj.weight"].T
        v = h @ P[pre + "self_attn.v_proj.weight"].T
        qh = rope_fwd(split_heads(q), cos, sin)
        kh = repeat_kv(rope_fwd(split_heads(k, KVH), cos, sin))
        vh = repeat_kv(split_heads(v, KVH))
        oh, c["attn"] = attention_fwd(qh, kh, vh)
        o = merge_heads(oh)
        c["o"] = o
        x = x + o @ P[pre + "self_attn.o_proj.weight"].T
        c["x_mid"] = x
        h2, c["n2"] = rmsnorm_fwd(x, P[pre + "post_attention_layernorm.weight"])
        c["h2"] = h2
        g = h2 @ P[pre + "mlp.gate_proj.weight"].T
        u = h2 @ P[pre + "mlp.up_proj.weight"].T
        sg = sigmoid(g)
        a = g * sg * u
        c.update(g=g, u=u, sg=sg, a=a)
        x = x + a @ P[pre + "mlp.down_proj.weight"].T
        caches[l] = c
    hf, caches["nf"] = rmsnorm_fwd(x, P["model.norm.weight"])
    caches["hf"] = hf
    head = P["model.embed_tokens.weight"] if TIED else P["lm_head.weight"]
    logits = hf @ head.T                                        # (B, T, V)

    m = np.max(logits, axis=-1, keepdims=True)
    lse = m[..., 0] + np.log(np.sum(np.exp(logits - m), axis=-1))
    picked = np.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    loss = float(np.mean(lse - picked))
    caches["probs"] = np.exp(logits - lse[..., None])
    caches["targets"] = targets
    return loss, logits, caches


def backward(P, caches):
    """Returns name -> float64 gradient of the loss for every parameter."""
    cos, sin = rope_tables()
    G = {}
    probs, targets, tokens = caches["probs"], caches["targets"], caches["tokens"]
    dlogits = probs.copy()
    np.put_along_axis(
        dlogits, targets[..., None],
        np.take_along_axis(dlogits, targets[..., None], axis=-1) - 1.0, axis=-1)
    dlogits /= (B * T)

    head = "model.embed_tokens.weight" if TIED else "lm_head.weight"
    dhf, dhead = linear_bwd(dlogits, caches["hf"], P[head])
    dx, G["model.norm.weight"] = rmsnorm_bwd(dhf, caches["nf"])

    for l in reversed(range(L)):
        pre = f"model.layers.{l}."
        c = caches[l]
        # MLP residual branch: x = x_mid + a @ Wdown.T
        da, G[pre + "mlp.down_proj.weight"] = linear_bwd(
            dx, c["a"], P[pre + "mlp.down_proj.weight"])
        g, u, sg = c["g"], c["u"], c["sg"]
        du = da * g * sg
        dg = da * u * sg * (1.0 + g * (1.0 - sg))
        dh2_g, G[pre + "mlp.gate_proj.weight"] = linear_bwd(
            dg, c["h2"], P[pre + "mlp.gate_proj.weight"])
        dh2_u, G[pre + "mlp.up_proj.weight"] = linear_bwd(
            du, c["h2"], P[pre + "mlp.up_proj.weight"])
        dxm, G[pre + "post_attention_layernorm.weight"] = rmsnorm_bwd(
            dh2_g + dh2_u, c["n2"])
        dx = dx + dxm
        # attention residual branch: x_mid = x_in + o @ Wo.T
        do, G[pre + "self_attn.o_proj.weight"] = linear_bwd(
            dx, c["o"], P[pre + "self_attn.o_proj.weight"])
        dqh, dkh, dvh = attention_bwd(split_heads(do), c["attn"])
        dq = merge_heads(rope_bwd(dqh, cos, sin))
        dk = merge_heads(rope_bwd(sum_kv(dkh), cos, sin))
        dv = merge_heads(sum_kv(dvh))
        dh_q, G[pre + "self_attn.q_proj.weight"] = linear_bwd(
            dq, c["h"], P[pre + "self_attn.q_proj.weight"])
        dh_k, G[pre + "self_attn.k_proj.weight"] = linear_bwd(
            dk, c["h"], P[pre + "self_attn.k_proj.weight"])
        dh_v, G[pre + "self_attn.v_proj.weight"] = linear_bwd(
            dv, c["h"], P[pre + "self_attn.v_proj.weight"])
        dxi, G[pre + "input_layernorm.weight"] = rmsnorm_bwd(
            dh_q + dh_k + dh_v, c["n1"])
        dx = dx + dxi

    demb = np.zeros_like(P["model.embed_tokens.weight"])
    np.add.at(demb, tokens.reshape(-1), dx.reshape(-1, C))
    if TIED:
        demb += dhead
    else:
        G["lm_head.weight"] = dhead
    G["model.embed_tokens.weight"] = demb
    return G


# --------------------------------------------------------------------------
# Minimal safetensors writer / reader
# --------------------------------------------------------------------------
_DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I32": np.dtype("<i4")}


def write_safetensors(path, tensors, metadata):
    """tensors: list of (name, dtype_str, array) written in that order."""
    header = {"__metadata__": dict(metadata)}
    chunks, offset = [], 0
    for name, dt, arr in tensors:
        buf = np.ascontiguousarray(arr, dtype=_DTYPES[dt]).tobytes()
        assert offset % _DTYPES[dt].itemsize == 0, f"misaligned {name}"
        header[name] = {"dtype": dt, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(buf)]}
        chunks.append(buf)
        offset += len(buf)
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * ((-len(hbytes)) % 8)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hbytes)))
        f.write(hbytes)
        for buf in chunks:
            f.write(buf)


def read_safetensors(path):
    """Returns (name -> (dtype_str, array), metadata)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    metadata = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        arr = np.frombuffer(data[b:e], dtype=_DTYPES[info["dtype"]])
        out[name] = (info["dtype"], arr.reshape(info["shape"]).copy())
    return out, metadata


# --------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------
def as64(params32):
    return {k: v.astype(np.float64) for k, v in params32.items()}


def finite_difference_check(n_per_tensor=5, h=1e-5, tol=1e-6):
    params32, tokens, targets = init()
    P = as64(params32)
    loss, _, caches = forward(P, tokens, targets)
    G = backward(P, caches)
    rng = np.random.default_rng(0)
    worst = 0.0
    for name, shape, _ in param_specs():
        flat = P[name].reshape(-1)  # view into P[name]
        if name == "model.embed_tokens.weight":
            # only rows of tokens that occur have a nonzero gradient; sample
            # from those so the check is not trivially 0 == 0
            rows = np.unique(tokens)
            cand = (rows[:, None] * C + np.arange(C)[None, :]).reshape(-1)
        else:
            cand = np.arange(flat.size)
        idx = rng.choice(cand, size=n_per_tensor, replace=False)
        errs = []
        for i in idx:
            orig = flat[i]
            flat[i] = orig + h
            lp, _, _ = forward(P, tokens, targets)
            flat[i] = orig - h
            lm, _, _ = forward(P, tokens, targets)
            flat[i] = orig
            fd = (lp - lm) / (2 * h)
            an = G[name].reshape(-1)[i]
            errs.append(abs(fd - an) / max(abs(fd), abs(an), 1e-12))
        e = max(errs)
        worst = max(worst, e)
        print(f"  {name:48s} max rel err {e:.3e}")
    print(f"loss = {loss:.17g}")
    print(f"max relative error over all sampled elements: {worst:.3e} "
          f"({'PASS' if worst < tol else 'FAIL'}, tol {tol:g})")
    return worst < tol


def generate(out_path):
    params32, tokens, targets = init()
    P = as64(params32)
    loss, logits, caches = forward(P, tokens, targets)
    G = backward(P, caches)
    specs = param_specs()
    tensors = [(name, "F32", params32[name]) for name, _, _ in specs]
    tensors += [("tokens", "I32", tokens), ("targets", "I32", targets),
                ("loss", "F64", np.array([loss])), ("logits", "F64", logits)]
    tensors += [("grad." + name, "F64", G[name]) for name, _, _ in specs]
    write_safetensors(out_path, tensors, METADATA)

    # round-trip check
    back, meta = read_safetensors(out_path)
    assert meta == METADATA, meta
    assert list(back.keys()) == [t[0] for t in tensors]
    for name, dt, arr in tensors:
        rdt, rarr = back[name]
        assert rdt == dt and rarr.shape == arr.shape, name
        assert np.array_equal(rarr, np.asarray(arr, dtype=_DTYPES[dt])), name
    with open(out_path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
    assert n % 8 == 0

    print(f"wrote {out_path} ({os.path.getsize(out_path)} bytes), round-trip OK")
    print(f"loss = {loss:.17g}")
    for name in [n for n in ("lm_head.weight", "model.embed_tokens.weight") if n in G]:
        print(f"grad.{name}[:3] = {[float(v) for v in G[name].reshape(-1)[:3]]}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="verify the backward pass with central finite differences")
    ap.add_argument("--out", help="output safetensors path")
    ap.add_argument("--variant", choices=["mha-untied", "gqa-tied"], default="mha-untied",
                    help="gqa-tied: grouped-query attention and tied embeddings")
    args = ap.parse_args(argv)
    if args.variant == "gqa-tied":
        use_gqa_tied()
    args.out = args.out or (VARIANT_OUT if args.variant == "gqa-tied" else DEFAULT_OUT)
    if args.check:
        return 0 if finite_difference_check() else 1
    generate(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
