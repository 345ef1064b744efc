#!/usr/bin/env python3
"""Compare `circuitscope forward` logits with Hugging Face for model folders.

Usage:
    python scripts/check_hf.py DIR [DIR ...] [--bin PATH] [--tol 1e-4]

DIR is any Hugging Face GPT-2 / GPT-NeoX folder (config.json + model.safetensors),
e.g. models/toy-ioi, tests/fixtures/gpt2-tiny, or a folder written by
`make_fixtures.py --random-configs K --out DIR` (passing that parent folder
checks every model folder inside it).

For each folder: tokens come from DIR/tokens.json if present (a JSON list of
equal-length lists of ids), otherwise a fixed random batch [2, 12] with BOS
(bos_token_id, default 0) in the first column.  The reference logits come from
DIR/hf_logits.safetensors if present, otherwise from running HF (f32, eager
attention).  Then

    circuitscope forward --model DIR --tokens T.json --out L.safetensors

is run (the output holds f32 `logits` [batch, pos, vocab]) and max |delta| is
printed.  Exits non-zero if any folder differs by more than --tol (or fails).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def model_dirs(paths: list[Path]) -> list[Path]:
    out = []
    for p in paths:
        if (p / "config.json").exists():
            out.append(p)
        elif p.is_dir():
            subs = sorted(d for d in p.iterdir() if (d / "config.json").exists())
            if not subs:
                raise SystemExit(f"{p}: no config.json here or in its sub-folders")
            out.extend(subs)
        else:
            raise SystemExit(f"{p}: not a folder")
    return out


def make_tokens(d: Path) -> torch.Tensor:
    tj = d / "tokens.json"
    if tj.exists():
        return torch.tensor(json.loads(tj.read_text()), dtype=torch.int64)
    cfg = json.loads((d / "config.json").read_text())
    vocab = int(cfg["vocab_size"])
    n_ctx = int(cfg.get("n_positions") or cfg.get("max_position_embeddings") or 64)
    bos = cfg.get("bos_token_id")
    bos = 0 if bos is None else int(bos)
    seq = min(12, n_ctx)
    g = torch.Generator().manual_seed(1234)
    toks = torch.randint(0, vocab, (2, seq), generator=g, dtype=torch.int64)
    toks[:, 0] = bos
    return toks


@torch.no_grad()
def hf_logits(d: Path, tokens: torch.Tensor) -> torch.Tensor:
    ref = d / "hf_logits.safetensors"
    if ref.exists() and (d / "tokens.json").exists():
        return load_file(str(ref))["logits"].float()
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        str(d), dtype=torch.float32, attn_implementation="eager", local_files_only=True
    )
    model.eval()
    return model(tokens).logits.float()


def run_circuitscope(binary: Path, d: Path, tokens: torch.Tensor, tmp: Path) -> torch.Tensor:
    tok_path = tmp / "tokens.json"
    out_path = tmp / "logits.safetensors"
    tok_path.write_text(json.dumps(tokens.tolist()))
    if out_path.exists():
        out_path.unlink()
    cmd = [str(binary), "forward", "--model", str(d), "--tokens", str(tok_path), "--out", str(out_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return load_file(str(out_path))["logits"].float()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--bin", type=Path, default=REPO / "target" / "debug" / "circuitscope")
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    if not args.bin.exists():
        print(f"circuitscope binary not found: {args.bin} (build it or pass --bin)", file=sys.stderr)
        return 2

    failed = 0
    dirs = model_dirs(args.dirs)
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        for d in dirs:
            try:
                tokens = make_tokens(d)
                ref = hf_logits(d, tokens)
                got = run_circuitscope(args.bin, d, tokens, tmp)
                if got.shape != ref.shape:
                    raise RuntimeError(f"shape {tuple(got.shape)} != HF {tuple(ref.shape)}")
                delta = (got - ref).abs().max().item()
                ok = delta <= args.tol
                failed += not ok
                print(f"{'ok  ' if ok else 'FAIL'} {d}  tokens {tuple(tokens.shape)}  max |delta| = {delta:.3e}")
            except Exception as e:  # noqa: BLE001
                failed += 1
                print(f"FAIL {d}: {e}")
    print(f"{len(dirs) - failed}/{len(dirs)} within {args.tol:g}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
