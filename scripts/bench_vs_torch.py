#!/usr/bin/env python3
"""PyTorch speed baseline: GPT-2-small-shaped random model, CPU, float32.

    python scripts/bench_vs_torch.py [--threads 2] [--batch 50] [--seq 20] [--iters 5]

Hugging Face GPT2LMHeadModel (12 layers, d_model 768, 12 heads, vocab 50257,
n_positions 1024), random init, eval mode, torch.no_grad(), eager attention.
Times (a) the full forward with logits at every position (as HF computes them)
and (b) the transformer body plus lm_head at the last position only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--seq", type=int, default=20)
    ap.add_argument("--iters", type=int, default=5, help="timed forward passes (at least 5)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--attn", default="eager", help="HF attention implementation (eager or sdpa)")
    args = ap.parse_args()
    iters = max(5, args.iters)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from importlib.metadata import version

    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(n_layer=12, n_embd=768, n_head=12, vocab_size=50257, n_positions=1024,
                     activation_function="gelu_new")
    model = GPT2LMHeadModel(cfg).to(torch.float32).eval()
    model.config._attn_implementation = args.attn
    tokens = torch.randint(0, cfg.vocab_size, (args.batch, args.seq), dtype=torch.int64)
    n_tok = args.batch * args.seq

    def full():
        return model(tokens).logits

    def last_only():
        h = model.transformer(tokens).last_hidden_state  # includes ln_f
        return model.lm_head(h[:, -1, :])

    print(f"torch {torch.__version__}, transformers {version('transformers')}, "
          f"threads {torch.get_num_threads()}, attention {args.attn}")
    print(f"GPT-2 small shape (12 x 768, 12 heads, vocab 50257), f32, batch {args.batch} x {args.seq} "
          f"= {n_tok} tokens, {iters} timed passes after {args.warmup} warm-up")
    with torch.no_grad():
        for label, fn in (("full logits", full), ("last-position logits", last_only)):
            for _ in range(args.warmup):
                out = fn()
            times = []
            cpu = []
            for _ in range(iters):
                t0, c0 = time.perf_counter(), time.process_time()
                out = fn()
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            med = statistics.median(times)
            cmed = statistics.median(cpu)
            # CPU seconds per pass do not depend on other jobs sharing the machine (with one
            # thread they are the work itself; with more, they include waiting threads).
            print(f"{label:22s} median {med * 1e3:9.1f} ms/forward  (min {min(times) * 1e3:.1f}, "
                  f"max {max(times) * 1e3:.1f})  {n_tok / med:9.0f} tokens/s  "
                  f"CPU {cmed * 1e3:.1f} ms, {n_tok / cmed:.0f} tokens per CPU-second  "
                  f"out {tuple(out.shape)}")


if __name__ == "__main__":
    main()
