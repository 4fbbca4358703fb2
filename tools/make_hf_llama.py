#!/usr/bin/env python3
"""Builds a random Hugging Face `LlamaForCausalLM` with transformers, saves it, and writes its
FP32 logits on a token sequence: the oracle of `qtrain-dist import` for Hugging Face folders.

    python3 tools/make_hf_llama.py OUT_DIR [--kv-heads 2] [--tied] [--dtype bfloat16]
        [--shard-size 200KB] [--rope-scaling]

The folder holds config.json, model.safetensors (or shards with model.safetensors.index.json
when the weights exceed --shard-size) and a byte-level BPE tokenizer.json; OUT_DIR/logits.json
holds the tokens and the logits of the saved folder loaded back by transformers in FP32 (weights
saved in BF16 are widened exactly, so the logits are those of the file's values).
"""
import argparse
import json
import os

import torch
from transformers import LlamaConfig, LlamaForCausalLM
from tokenizers import Tokenizer, models, pre_tokenizers, decoders


def byte_level_tokenizer(vocab_size):
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {c: i for i, c in enumerate(sorted(alphabet))}
    merges = []
    for a, b in [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a")]:
        vocab[a + b] = len(vocab)
        merges.append((a, b))
    vocab["<|endoftext|>"] = len(vocab)
    assert len(vocab) <= vocab_size
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    return tok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--tied", action="store_true")
    ap.add_argument("--dtype", default="bfloat16", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--shard-size", default="200KB")
    ap.add_argument("--rope-scaling", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=272, hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=args.kv_heads, max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=50000.0,
        tie_word_embeddings=args.tied, hidden_act="silu", attention_bias=False, mlp_bias=False,
        initializer_range=0.1, rope_scaling={"rope_type": "linear", "factor": 2.0} if args.rope_scaling else None)
    model = LlamaForCausalLM(config).eval()
    # Larger than the 0.1 init for the norms too, so that every part of the model matters.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
    dtype = getattr(torch, args.dtype)
    saved = model.to(dtype)
    os.makedirs(args.out, exist_ok=True)
    saved.save_pretrained(args.out, max_shard_size=args.shard_size, safe_serialization=True)
    byte_level_tokenizer(config.vocab_size).save(os.path.join(args.out, "tokenizer.json"))
    tokens = [int(t) for t in torch.randint(0, config.vocab_size, (24,))]
    # The oracle is the saved folder as transformers loads it in FP32 (the in-memory model's
    # RoPE buffers went through the cast to --dtype too, and would be an inexact reference).
    reloaded = LlamaForCausalLM.from_pretrained(args.out, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = reloaded(torch.tensor([tokens])).logits[0]
    with open(os.path.join(args.out, "logits.json"), "w") as f:
        json.dump({"tokens": tokens, "logits": logits.reshape(-1).tolist()}, f)
    print(f"wrote {args.out}: {sorted(os.listdir(args.out))}")


if __name__ == "__main__":
    main()
