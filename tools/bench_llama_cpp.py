#!/usr/bin/env python3
"""Times a GGUF model in llama.cpp (llama-cpp-python) the way `qtrain-dist generate --timing`
times a checkpoint, for tools/bench_decode.sh:

    python3 tools/bench_llama_cpp.py MODEL.gguf --prompt TEXT --max-tokens N --threads 2

Prints one JSON line: prompt tokens, prompt seconds and tokens/s (the prompt evaluated as one
batch), generated tokens, generation seconds and tokens/s (greedy: each token an argmax of the
logits and, but the last, one evaluation, as qtrain counts them), and the time to the first
token with its parts (model load, prompt, first token). Python's start-up and the import of
llama_cpp are not counted, as qtrain's process start-up is not.
"""
import argparse
import json
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--max-tokens", type=int, default=120)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=512)
    args = ap.parse_args()
    from llama_cpp import Llama

    t0 = time.perf_counter()
    llm = Llama(model_path=args.gguf, n_ctx=args.ctx, n_batch=args.ctx, n_threads=args.threads,
                n_threads_batch=args.threads, logits_all=False, verbose=False)
    t_load = time.perf_counter()
    tokens = llm.tokenize(args.prompt.encode(), add_bos=False, special=False)
    llm.reset()
    llm.eval(tokens)
    t_prompt = time.perf_counter()
    ids = []
    t_first = None
    for i in range(args.max_tokens):
        next_id = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        ids.append(next_id)
        if i == 0:
            t_first = time.perf_counter()
        if i + 1 == args.max_tokens:
            break
        llm.eval([next_id])
    t_end = time.perf_counter()
    prompt_s, gen_s = t_prompt - t_load, t_end - t_prompt
    print(json.dumps({
        "prompt_tokens": len(tokens), "prompt_seconds": prompt_s, "prompt_tokens_per_second": len(tokens) / prompt_s,
        "generated_tokens": len(ids), "generation_seconds": gen_s,
        "generation_tokens_per_second": len(ids) / gen_s,
        "time_to_first_token": t_first - t0,
        "startup": {"model load": t_load - t0, "prompt": prompt_s, "first token": t_first - t_prompt},
    }))


if __name__ == "__main__":
    main()
