#!/usr/bin/env python3
"""Reads a GGUF file that `qtrain-dist export --format gguf` wrote back with the `gguf` package
(llama.cpp's own reader) and checks it against the checkpoint it came from:

    python3 tools/check_gguf.py MODEL.gguf CHECKPOINT_DIR [--ternary]

- every tensor is there with llama.cpp's name, shape and a type qtrain maps its storage onto;
- dequantised, it equals the checkpoint's weights (tools/read_checkpoint.py) within the FP16
  rounding of the block step (exactly for F32), with Q and K rows back in rotate-half order;
- the tokenizer metadata lists the checkpoint tokenizer's tokens, merges or pieces, scores and
  special ids.
Prints one JSON object ({"types": {name: type}, "max_rel_error": x, ...}) and "OK" last.
"""
import base64
import json
import os
import sys
import tempfile

import numpy as np
import gguf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import read_checkpoint  # noqa: E402


def gguf_name(hf):
    table = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    if hf in table:
        return table[hf]
    parts = hf.split(".")
    layer, rest = parts[2], ".".join(parts[3:])
    short = {"input_layernorm.weight": "attn_norm", "self_attn.q_proj.weight": "attn_q",
             "self_attn.k_proj.weight": "attn_k", "self_attn.v_proj.weight": "attn_v",
             "self_attn.o_proj.weight": "attn_output", "post_attention_layernorm.weight": "ffn_norm",
             "mlp.gate_proj.weight": "ffn_gate", "mlp.up_proj.weight": "ffn_up", "mlp.down_proj.weight": "ffn_down"}[rest]
    return f"blk.{layer}.{short}.weight"


def unpermute(w, heads):
    """llama.cpp's interleaved RoPE rows back to Hugging Face's rotate-half order."""
    d = w.shape[0] // heads
    return w.reshape(heads, d // 2, 2, -1).swapaxes(1, 2).reshape(w.shape)


def field(reader, key):
    f = reader.fields.get(key)
    return None if f is None else f.contents()


def main():
    path, ckpt = sys.argv[1], read_checkpoint.checkpoint_directory(sys.argv[2])
    reader = gguf.GGUFReader(path)
    state = json.load(open(os.path.join(ckpt, "state.json")))
    mode = read_checkpoint.read_safetensors(os.path.join(ckpt, "model.safetensors"))[0].get("qtrain.quant_mode")
    weights = read_checkpoint.load(ckpt, forward=True, ternary="--ternary" in sys.argv[3:])
    heads = field(reader, "llama.attention.head_count")
    kv_heads = field(reader, "llama.attention.head_count_kv") or heads
    assert field(reader, "general.architecture") == "llama"
    tensors = {t.name: t for t in reader.tensors}
    assert len(tensors) == len(weights), (sorted(tensors), sorted(weights))
    types, worst = {}, 0.0
    for name, expected in weights.items():
        t = tensors[gguf_name(name)]
        kind = t.tensor_type.name
        types[name] = kind
        assert list(t.shape) == list(reversed(expected.shape)), (name, t.shape, expected.shape)
        got = gguf.quants.dequantize(t.data, t.tensor_type).reshape(expected.shape).astype(np.float32)
        if ".q_proj." in name:
            got = unpermute(got, heads)
        if ".k_proj." in name:
            got = unpermute(got, kv_heads)
        if kind == "F32":
            assert np.array_equal(got, expected), name
            continue
        if kind == "BF16":
            bound = np.abs(expected) * 2.0 ** -8
        else:
            assert kind in ("TQ2_0", "Q4_0", "Q8_0"), (name, kind)
            assert mode in ("dqt", "bitnet"), (name, kind, mode)
            # value = code · d with d the FP16 rounding of the tensor's step: relative error ≤ 2^-11.
            bound = np.abs(expected) * 2.0 ** -11 * 1.0001
        err = np.abs(got - expected)
        assert (err <= bound).all(), (name, kind, float(err.max()))
        nz = expected != 0
        if nz.any():
            worst = max(worst, float((err[nz] / np.abs(expected[nz])).max()))
        assert np.array_equal(got == 0, expected == 0), name

    tok = json.load(open(os.path.join(ckpt, "tokenizer.json")))
    tokens = field(reader, "tokenizer.ggml.tokens")
    model = field(reader, "tokenizer.ggml.model")
    eos = field(reader, "tokenizer.ggml.eos_token_id")
    assert len(tokens) == field(reader, "llama.vocab_size")
    if tok.get("qtrain_tokenizer") == "sentencepiece":
        import sentencepiece
        with tempfile.NamedTemporaryFile(suffix=".model") as f:
            f.write(base64.b64decode(tok["model_base64"]))
            f.flush()
            sp = sentencepiece.SentencePieceProcessor(model_file=f.name)
        n = sp.get_piece_size()
        assert model == "llama"
        assert tokens[:n] == [sp.id_to_piece(i) for i in range(n)]
        scores = field(reader, "tokenizer.ggml.scores")
        assert np.allclose(scores[:n], [sp.get_score(i) for i in range(n)])
        kinds = field(reader, "tokenizer.ggml.token_type")
        assert all((kinds[i] == 3) == sp.is_control(i) and (kinds[i] == 6) == sp.is_byte(i) for i in range(n))
        assert eos == sp.eos_id() and field(reader, "tokenizer.ggml.unknown_token_id") == sp.unk_id()
    elif "model" in tok and tok["model"].get("type") == "BPE":
        digits = tok.get("pre_tokenizer", {}).get("type") == "Sequence"  # Digits then ByteLevel (SmolLM2's)
        assert model == "gpt2" and field(reader, "tokenizer.ggml.pre") == ("smollm" if digits else "gpt-2")
        vocab = dict(tok["model"]["vocab"])
        for a in tok.get("added_tokens", []):
            vocab[a["content"]] = a["id"]
        assert all(tokens[i] == t for t, i in vocab.items())
        merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
        assert (field(reader, "tokenizer.ggml.merges") or []) == merges
        assert tokens[eos] == "<|endoftext|>"
    else:
        # The byte tokenizer: GPT-2's byte-level alphabet, then <|endoftext|>.
        assert model == "gpt2" and len(tokens) >= 257 and tokens[256] == "<|endoftext|>" and eos == 256
        assert (field(reader, "tokenizer.ggml.merges") or []) == []
    assert field(reader, "qtrain.step") == state["step"]
    print(json.dumps({"types": types, "max_rel_error": worst, "tokens": len(tokens), "tokenizer": model,
                      "bytes": os.path.getsize(path)}))
    print("OK")


if __name__ == "__main__":
    main()
