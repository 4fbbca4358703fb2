#!/usr/bin/env python3
"""Writes a tiny LLaMA GGUF file the way llama.cpp's converter does, with llama.cpp's own
`gguf` package, as an independent oracle for `qtrain-dist import`:

    python3 tools/make_gguf_fixture.py OUT.gguf [--variant NAME]

- shape: 1 block, width 256, 4 query heads over 2 key/value heads, SwiGLU 256, vocabulary 268,
  tied embeddings (no output.weight) unless --variant untied;
- every tensor type qtrain reads: token_embd Q8_0, attn_q Q4_1, attn_k Q4_0, attn_v F16,
  attn_output BF16, ffn_gate TQ2_0, ffn_up Q8_0, ffn_down Q4_1, norms F32 (output F16 when untied);
- Q and K rows permuted into llama.cpp's interleaved RoPE order, as convert_hf_to_gguf.py does;
- a byte-level BPE tokenizer (GPT-2's byte alphabet, a few merges, <|endoftext|>) with
  `tokenizer.ggml.pre = smollm`, and the same tokenizer as OUT.tokenizer.json for Hugging Face
  `tokenizers` (Digits(individual_digits) then ByteLevel).
OUT.reference.safetensors holds what an importer must produce: every tensor under its Hugging
Face name, in Hugging Face's row order, as ggml dequantises it (F32).

Variants that an importer must refuse: gemma (another architecture), q5_0 (a tensor type qtrain
does not read), bias (attn_q.bias), rope-scaling (llama.rope.scaling.type = linear), big-vocab
(a tokenizer of more tokens than the embedding has rows).
"""
import argparse
import json

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from safetensors.numpy import save_file

C, F, H, G, V = 256, 256, 4, 2, 268
D = C // H


def byte_alphabet():
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    chars, n = printable[:], 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    table = dict(zip(printable, chars))
    return [chr(table[b]) for b in range(256)]


def permute(w, heads):
    """Hugging Face rotate-half rows -> llama.cpp interleaved pairs (convert_hf_to_gguf.py)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute(w, heads):
    return w.reshape(heads, w.shape[0] // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--variant", default="normal",
                    choices=["normal", "untied", "gemma", "q5_0", "bias", "rope-scaling", "big-vocab"])
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    arch = "gemma" if args.variant == "gemma" else "llama"
    w = gguf.GGUFWriter(args.out, arch)
    w.add_name("qtrain import fixture")
    w.add_block_count(1)
    w.add_context_length(512)
    w.add_embedding_length(C)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    w.add_head_count_kv(G)
    w.add_rope_dimension_count(D)
    w.add_rope_freq_base(50000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(V)
    if args.variant == "rope-scaling":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(2.0)

    alphabet = byte_alphabet()
    merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "a n", "Ġa n", "Ġan d", "o n", "r e"]
    tokens = alphabet + ["".join(m.split(" ")) for m in merges] + ["<|endoftext|>", "<|im_start|>"]
    extra = 8 if args.variant == "big-vocab" else 0
    tokens += [f"<extra_{i}>" for i in range(extra)]
    assert len(tokens) == V + extra, len(tokens)
    types = [1] * (len(tokens) - 2 - extra) + [3, 3] + [4] * extra
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_eos_token_id(V - 2)
    w.add_bos_token_id(V - 1)
    w.add_add_bos_token(False)

    reference = {}

    def add(hf, name, shape, qtype, heads=None, scale=0.05):
        x = rng.normal(0, scale, size=shape).astype(np.float32)
        if name.endswith("norm.weight"):
            x = (1 + rng.normal(0, 0.1, size=shape)).astype(np.float32)
        stored = permute(x, heads) if heads else x
        if qtype == T.F32:
            raw, back = stored, stored
        else:
            raw = gguf.quants.quantize(stored, qtype)
            back = gguf.quants.dequantize(raw, qtype).reshape(shape).astype(np.float32)
        w.add_tensor(name, raw, raw_dtype=qtype)
        if hf:
            reference[hf] = unpermute(back, heads) if heads else back

    p = "model.layers.0."
    add("model.embed_tokens.weight", "token_embd.weight", (V, C), T.Q8_0)
    add(p + "input_layernorm.weight", "blk.0.attn_norm.weight", (C,), T.F32)
    add(p + "self_attn.q_proj.weight", "blk.0.attn_q.weight", (C, C),
        T.Q5_0 if args.variant == "q5_0" else T.Q4_1, heads=H)
    add(p + "self_attn.k_proj.weight", "blk.0.attn_k.weight", (G * D, C), T.Q4_0, heads=G)
    add(p + "self_attn.v_proj.weight", "blk.0.attn_v.weight", (G * D, C), T.F16)
    add(p + "self_attn.o_proj.weight", "blk.0.attn_output.weight", (C, C), T.BF16)
    add(p + "post_attention_layernorm.weight", "blk.0.ffn_norm.weight", (C,), T.F32)
    add(p + "mlp.gate_proj.weight", "blk.0.ffn_gate.weight", (F, C), T.TQ2_0)
    add(p + "mlp.up_proj.weight", "blk.0.ffn_up.weight", (F, C), T.Q8_0)
    add(p + "mlp.down_proj.weight", "blk.0.ffn_down.weight", (C, F), T.Q4_1)
    add("model.norm.weight", "output_norm.weight", (C,), T.F32)
    if args.variant == "untied":
        add("lm_head.weight", "output.weight", (V, C), T.F16)
    if args.variant == "bias":
        add(None, "blk.0.attn_q.bias", (C,), T.F32)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    stem = args.out[:-5] if args.out.endswith(".gguf") else args.out
    save_file(reference, stem + ".reference.safetensors")

    vocab = {t: i for i, t in enumerate(tokens)}
    hf = {
        "version": "1.0", "truncation": None, "padding": None, "normalizer": None, "post_processor": None,
        "added_tokens": [{"id": i, "content": tokens[i], "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for i in range(len(tokens)) if types[i] != 1],
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }
    with open(stem + ".tokenizer.json", "w") as f:
        json.dump(hf, f, ensure_ascii=False)
    print(f"wrote {args.out} ({args.variant}), {stem}.reference.safetensors, {stem}.tokenizer.json")


if __name__ == "__main__":
    main()
